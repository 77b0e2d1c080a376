"""The README's Python API section runs as written, on the tiny model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.support.loras import lora_layers, save_kohya_lora

ROOT = Path(__file__).resolve().parents[1]


def api_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API\n"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_section_has_the_examples_the_issue_asks_for():
    blocks = api_blocks()
    assert len(blocks) >= 4
    joined = "\n".join(blocks)
    for needle in ("adcli.load_model(", "adcli.from_pipe(", "loras=", "callback=", "adcli.save(", "adcli.t2i(",
                   "adcli.texture(", "adcli.expand(", "adcli.appearance(", "adcli.finetune_vae("):
        assert needle in joined, needle


@pytest.mark.parametrize("index", range(len(api_blocks())))
def test_readme_python_block_runs(index, tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    save_kohya_lora(lora_layers("sd15"), tmp_path / "ink-lora.safetensors")
    monkeypatch.chdir(tmp_path)
    exec(compile(api_blocks()[index], f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
    if "adcli.save(" in api_blocks()[index]:
        assert (tmp_path / "chelsea_hubble.png").is_file()
    if "callback=show" in api_blocks()[index]:
        printed = capsys.readouterr().out.splitlines()
        assert printed[-1].startswith("10/200")  # the callback stopped the run at step 10
