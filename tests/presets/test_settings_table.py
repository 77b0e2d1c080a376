"""The settings table: one declaration per setting reaches the YAML check, the CLI options (with
their defaults in --help), the API keywords and the manifest columns; values are checked alike."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from adcli.presets import SETTINGS, TASK_KEYS, builtin_values, load_settings, preset_path
from adcli.presets import loader
from adcli.errors import PresetError
from tests.support.batch_helpers import image, one_line_error, run

IMAGE_COMMANDS = ("style-transfer", "appearance", "texture", "t2i", "expand")


@pytest.mark.parametrize("task", list(TASK_KEYS))
def test_every_key_of_a_task_is_in_its_preset_and_nothing_else(task):
    import yaml

    keys = set(yaml.safe_load(preset_path(task).read_text())) - {"by_arch"}  # per-architecture values
    assert keys == set(TASK_KEYS[task])


@pytest.mark.parametrize("task", ["style-transfer", "t2i", "expand", "finetune-vae"])
def test_help_lists_every_setting_with_its_preset_default(task):
    result = run(task, "--help")
    assert result.exit_code == 0
    text = re.sub(r"[│\s]+", " ", result.output)
    for key in TASK_KEYS[task]:
        assert SETTINGS[key].flag in text, key
    iterations_or_steps = "iterations" if "iterations" in TASK_KEYS[task] else "steps"
    default = builtin_values(task)[iterations_or_steps]
    assert re.search(rf"--{iterations_or_steps}\b.*?\[default: {default}[;\]]", text), text


def test_flags_show_no_bool_placeholder():
    result = run("texture", "--help")
    for line in result.output.splitlines():
        if "--adain" in line or "--compile" in line or "--overwrite" in line:
            assert "<bool>" not in line, line


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_inf_are_rejected_at_parse_time(tmp_path, value):
    line = one_line_error(run("style-transfer", image(tmp_path / "c.png"), "--style", image(tmp_path / "s.png", 1),
                              "--model", "tiny", "--lr", value, "-o", tmp_path / "out.png"))
    assert "--lr must be a finite number" in line


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--iterations", "0"], "--iterations must be between 1 and 100000"),
        (["--lr", "-1"], "--lr must be greater than 0"),
        (["--content-weight", "-0.5"], "--content-weight must be"),
        (["--seed", "-3"], "--seed must be"),
        (["--dtype", "fp8"], "--dtype must be one of bf16, fp16, fp32"),
    ],
)
def test_out_of_range_options_name_the_option(tmp_path, args, flag):
    line = one_line_error(run("style-transfer", image(tmp_path / "c.png"), "--style", image(tmp_path / "s.png", 1),
                              "--model", "tiny", *args, "-o", tmp_path / "out.png"))
    assert flag in line


def test_t2i_guidance_and_strength_ranges(tmp_path):
    line = one_line_error(run("t2i", "a cat", "--style", image(tmp_path / "s.png"), "--model", "tiny", "--guidance", "0.5"))
    assert "--guidance must be between 1 and 100" in line
    line = one_line_error(run("t2i", "a cat", "--style", image(tmp_path / "s.png"), "--model", "tiny", "--strength", "0"))
    assert "--strength must be greater than 0" in line


def test_preset_files_are_checked_with_the_same_rules(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("lr: .nan\n")
    with pytest.raises(PresetError, match=r"preset .*p.yaml: lr must be a finite number"):
        load_settings("style-transfer", preset)
    preset.write_text("iteration: 10\n")
    with pytest.raises(PresetError, match="unknown setting iteration .did you mean iterations"):
        load_settings("style-transfer", preset)


def test_expand_stride_may_not_exceed_the_window():
    with pytest.raises(PresetError, match="stride"):
        load_settings("expand", overrides={"window": 8, "stride": 9})


def test_size_forms():
    assert load_settings("style-transfer", overrides={"size": "768"}).settings.size_spec().kind == "longer"
    assert load_settings("style-transfer", overrides={"size": "auto"}).settings.size_spec().kind == "auto"
    assert load_settings("style-transfer", overrides={"size": "640x480"}).settings.size_spec().exact == (640, 480)
    with pytest.raises(PresetError, match="takes WIDTHxHEIGHT"):
        load_settings("expand", overrides={"size": "auto"})
    with pytest.raises(PresetError, match="multiple of 8"):
        load_settings("texture", overrides={"size": "100"})


def test_a_big_manifest_reads_the_built_in_preset_once(tmp_path, monkeypatch):
    """A 2,000-row dry run resolves settings once per distinct row, not once per row."""
    content, style = image(tmp_path / "c.png"), image(tmp_path / "s.png", 1)
    rows = "content,style,seed\n" + "".join(f"{content},{style},{i % 3}\n" for i in range(2000))
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(rows)
    reads, loads = [], []
    real_read, real_load = loader._read_yaml, loader.load_settings
    loader.builtin_layer.cache_clear()
    monkeypatch.setattr(loader, "_read_yaml", lambda path: reads.append(path) or real_read(path))
    import adcli.batch.manifest as manifest_module

    monkeypatch.setattr(manifest_module, "load_settings", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    result = run("style-transfer", "--manifest", manifest, "--model", "tiny", "--dry-run", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert len(reads) == 1  # the built-in preset, once
    assert len(loads) == 3  # one per distinct seed
    loader.builtin_layer.cache_clear()


def _imported_after(code: str) -> str:
    probe = f"import sys\n{code}\nprint(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.subprocess
def test_version_help_and_info_do_not_import_the_model_libraries(tmp_path):
    code = (
        "from typer.testing import CliRunner\nfrom adcli.cli.app import app\nr = CliRunner()\n"
        "assert r.invoke(app, ['--version']).exit_code == 0\n"
        "assert r.invoke(app, ['style-transfer', '--help']).exit_code == 0\n"
        "assert r.invoke(app, ['t2i', '--help']).exit_code == 0\n"
        f"r.invoke(app, ['info', {str(image(tmp_path / 'x.png'))!r}])\n"
    )
    assert _imported_after(code) == "[]"
    assert _imported_after("import adcli") == "[]"
