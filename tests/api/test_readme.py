"""The README's Python API section runs as written, on the tiny model, and does what it says."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.loras import lora_layers, save_kohya_lora

ROOT = Path(__file__).resolve().parents[2]


def api_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API\n"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def settings_of(image: Image.Image) -> dict:
    return json.loads(image.info["adcli"])


def check_first_steps(names: dict, printed: list[str], folder: Path) -> None:
    assert (folder / "chelsea_hubble.png").is_file()
    assert names["image"].size == (128, 88) and printed[-1] == "(128, 88)"
    stored = settings_of(Image.open(folder / "chelsea_hubble.png"))
    assert stored["task"] == "style-transfer" and stored["settings"]["iterations"] == 20


def check_every_command(names: dict, printed: list[str], folder: Path) -> None:
    assert names["look"].size[0] == 64 and len(names["textures"]) == 2 and names["picture"].size == (64, 64)
    assert names["panorama"].size == (256, 128)
    assert (Path(names["vae_folder"]) / "config.json").is_file()
    assert printed[-1].startswith("10/200")  # the callback stopped the run at step 10
    assert settings_of(names["early"])["stopped_at_step"] == 10


def check_from_pipe(names: dict, printed: list[str], folder: Path) -> None:
    """The borrowed pipeline computes what the same model loaded by adcli computes."""
    import adcli

    own = adcli.style_transfer(adcli.load_model("tiny", device="cpu"), "samples/content/chelsea.jpg",
                               "samples/style/hubble.jpg", iterations=10, size="64")
    assert names["image"].size == own.size == (64, 40)  # chelsea's aspect ratio, longer side 64
    assert np.array_equal(np.asarray(names["image"]), np.asarray(own))
    assert settings_of(names["image"])["settings"]["iterations"] == 10


def check_lora(names: dict, printed: list[str], folder: Path) -> None:
    """The LoRA is fused at its scale (the texture differs from the plain model's) and recorded."""
    import adcli

    texture = names["texture"]
    plain = adcli.texture(adcli.load_model("tiny", device="cpu"), "samples/style/brick.jpg", iterations=10, size="64")[0]
    assert texture.size == plain.size and not np.array_equal(np.asarray(texture), np.asarray(plain))
    [lora] = settings_of(texture)["loras"]
    assert lora["name"] == "ink-lora.safetensors" and lora["scale"] == 0.8
    assert lora["sha256"].removeprefix("sha256:") == hashlib.sha256((folder / "ink-lora.safetensors").read_bytes()).hexdigest()


def check_start_latents(names: dict, printed: list[str], folder: Path) -> None:
    """FLUX's packed latents start the image (its size, and their digest recorded instead of the seed's noise)."""
    assert names["latents"].shape == (1, 16, 64) and names["image"].size == (64, 64)
    assert settings_of(names["image"])["model_arch"] == "flux" and "start_latents_sha256" in settings_of(names["image"])


CHECKS = {"adcli.save(": check_first_steps, "adcli.finetune_vae(": check_every_command,
          "adcli.from_pipe(": check_from_pipe, "loras=": check_lora, "latents=latents": check_start_latents}


def check_for(block: str):
    [check] = [check for needle, check in CHECKS.items() if needle in block]
    return check


def test_the_section_has_the_examples_the_issue_asks_for():
    blocks = api_blocks()
    assert len(blocks) >= 4
    joined = "\n".join(blocks)
    for needle in ("adcli.load_model(", "adcli.from_pipe(", "loras=", "callback=", "adcli.save(", "adcli.t2i(",
                   "adcli.texture(", "adcli.expand(", "adcli.appearance(", "adcli.finetune_vae("):
        assert needle in joined, needle
    for block in blocks:
        check_for(block)  # each block has exactly one check of what it claims


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(api_blocks())))
def test_readme_python_block_runs_and_does_what_it_says(index, tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    save_kohya_lora(lora_layers("sd15"), tmp_path / "ink-lora.safetensors")
    monkeypatch.chdir(tmp_path)
    block = api_blocks()[index]
    names = {"__name__": "readme"}
    exec(compile(block, f"README.md python block {index + 1}", "exec"), names)
    check_for(block)(names, capsys.readouterr().out.splitlines(), tmp_path)
