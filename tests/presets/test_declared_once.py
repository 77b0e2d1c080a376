"""What is declared once and derived everywhere else: the loading keys, which settings change
pixels, the API's load defaults, the flags in messages (the CLI spells settings, the API names
them), the job statuses, each command's input roles, and the typed settings classes."""

from __future__ import annotations

from types import SimpleNamespace

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import adcli
from adcli.batch import status
from adcli.batch.plan import JobResult
from adcli.errors import InputError, ModelLoadError, PresetError, render, setting
from adcli.outputs.metadata import NON_PIXEL_SETTINGS, fingerprint
from adcli.presets import LOADING_KEYS, SETTINGS, TASK_KEYS, preset_path
from adcli.tasks.registry import TASKS
from tests.support.batch_helpers import image, one_line_error, report_lines, run

PACKAGE = Path(adcli.__file__).resolve().parent


def test_loading_keys_are_the_tables_loading_settings_in_order():
    from adcli.tasks import model

    assert LOADING_KEYS == ("model", "model_config", "vae", "loras", "arch", "controlnet", "dtype", "device", "compile", "quantize",
                            "low_vram")
    assert model.LOADING_KEYS is LOADING_KEYS
    for task, keys in TASK_KEYS.items():
        assert {key for key in keys if SETTINGS[key].loading} <= set(LOADING_KEYS), task
    assert {key for keys in TASK_KEYS.values() for key in keys if SETTINGS[key].loading} == set(LOADING_KEYS)


def _other(value):
    """A different value of the same kind (the fingerprint compares values, it does not check them)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, list):
        return [*value, 1]
    return f"{value}-other"


@pytest.mark.parametrize("task", [task for task in TASK_KEYS if task != "finetune-vae"])
def test_only_where_and_how_fast_a_run_goes_is_left_out_of_the_fingerprint(task):
    """Changing any other setting makes --resume make the image again."""
    settings = yaml.safe_load(preset_path(task).read_text())
    settings.pop("by_arch", None)
    base = {"task": task, "settings": settings, "inputs": {}, "seed": 1}
    for key in settings:
        changed = fingerprint({**base, "settings": {**settings, key: _other(settings[key])}}) != fingerprint(base)
        assert changed == (key not in {"device", "compile", "low_vram", "window_batch", "preview_every"}), key
    assert NON_PIXEL_SETTINGS == {name for name, entry in SETTINGS.items() if not entry.pixels}


def test_load_model_defaults_are_the_built_in_presets(monkeypatch):
    import adcli.api as api

    loaded = []
    monkeypatch.setattr(api, "open_model", lambda loading: loaded.append(loading) or SimpleNamespace(notes=[]))
    adcli.load_model()
    written = yaml.safe_load(preset_path("style-transfer").read_text())
    expected = {key: value for key, value in written.items() if key in LOADING_KEYS}
    assert {key: list(value) if isinstance(value, tuple) else value for key, value in loaded[0].items()} == expected


def test_messages_name_settings_as_flags_on_the_command_line_and_keywords_in_python():
    message = status.out_of_memory_message("expand", batch=2)
    assert render(message, lambda name: SETTINGS[name].flag) == (
        "out of GPU memory: try a smaller --batch-size, --dtype fp16, a smaller --window-batch or a smaller --size"
    )
    assert render(status.out_of_memory_message("t2i"), lambda name: name) == "out of GPU memory: try dtype fp16 or a smaller size"
    assert str(InputError(f"try a smaller {setting('lr')}")) == "try a smaller lr"


def _string_constants(path: Path, only_raised: bool = False) -> list[tuple[int, str]]:
    """The string literals of a module (``only_raised``: those in the messages of its errors)."""
    tree = ast.parse(path.read_text())
    roots = [node.exc for node in ast.walk(tree) if isinstance(node, ast.Raise) and node.exc is not None] if only_raised else [tree]
    return [(node.lineno, node.value) for root in roots for node in ast.walk(root)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_below_the_cli_error_messages_spell_no_setting_flag():
    """Layers below the CLI name settings in their errors through setting() placeholders, never as --flags."""
    flags = {entry.flag for entry in SETTINGS.values()}
    found = []
    for layer in ("tasks", "batch", "outputs", "views", "presets"):
        for path in (PACKAGE / layer).rglob("*.py"):
            for line, text in _string_constants(path, only_raised=True):
                words = {word.strip(".,:;()'\"`") for word in text.split()}
                found += [f"{path.relative_to(PACKAGE)}:{line}: {flag}" for flag in flags & words]
    assert not found, "\n".join(found)


def test_job_statuses_are_defined_once():
    assert set(status.STATUSES) == {"planned", "done", "skipped", "failed", "not-run"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name != "status.py":
            found += [f"{path.relative_to(PACKAGE)}:{line} {text!r}" for line, text in _string_constants(path)
                      if text in (*status.STATUSES, status.INTERRUPTED)]
    assert not found, "\n".join(found)


def test_the_cli_spells_placeholders_as_flags_in_failure_lines_and_the_report(tmp_path):
    content, style = image(tmp_path / "c.png"), image(tmp_path / "s.png", 1)
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"content,style,layers\n{content},{style},99\n{content},{style},-1\n")
    result = run("style-transfer", "--manifest", manifest, "--model", "tiny", "--size", "32x32", "--iterations", "1",
                 "-o", tmp_path / "out", "--report", tmp_path / "r.jsonl")
    assert result.exit_code == 1, result.output
    assert "--layers 99 does not exist" in result.stderr and "{setting:" not in result.stderr
    [failed, done] = report_lines(tmp_path / "r.jsonl")
    assert failed["error"].startswith("--layers 99 does not exist") and done["status"] == "done"
    line = one_line_error(run("style-transfer", content, "--style", style, "--model", "tiny", "--layers", "99", "-o", tmp_path / "x.png"))
    assert "error: --layers 99 does not exist" in line


def test_the_api_raises_adclis_errors_as_they_are(tmp_path):
    model = adcli.load_model("tiny", device="cpu")
    content, style = image(tmp_path / "c.png"), image(tmp_path / "s.png", 1)
    with pytest.raises(PresetError, match=r"^adcli.style_transfer\(\): lr must be a finite number"):
        adcli.style_transfer(model, content, style, lr=float("nan"))
    with pytest.raises(InputError, match="does not exist"):
        adcli.style_transfer(model, tmp_path / "missing.png", style, iterations=1)
    with pytest.raises(ModelLoadError):
        adcli.load_model(str(tmp_path / "no-such-model"), device="cpu")
    with pytest.raises(PresetError, match="dtype must be one of"):
        adcli.load_model("tiny", dtype="fp8")


def test_the_jsonl_report_has_the_usual_file_permissions(tmp_path):
    from adcli.views.report import write_report

    previous = os.umask(0o022)
    try:
        path = write_report(tmp_path / "r.jsonl", [JobResult(1, "b", status.DONE), JobResult(0, "a", status.FAILED, error="x")])
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
    assert [json.loads(line)["name"] for line in path.read_text().splitlines()] == ["a", "b"]
    assert not list(tmp_path.glob(".*partial"))


def test_each_commands_roles_are_its_inputs_class():
    """The manifest columns, the stored inputs of a rerun and the API's arguments all read them here."""
    roles = {name: [(role.name, role.kind, role.required) for role in spec.roles] for name, spec in TASKS.items()}
    assert roles == {
        "style-transfer": [("content", "image", True), ("style", "images", True)],
        "appearance": [("structure", "image", True), ("appearance", "images", True)],
        "texture": [("reference", "images", True), ("image_index", "int", False), ("source_mask", "image", False),
                    ("target_mask", "image", False)],
        "t2i": [("prompt", "text", True), ("style", "images", True), ("image_index", "int", False), ("layout", "image", False),
                ("control", "image", False)],
        "expand": [("reference", "images", True), ("image_index", "int", False)],
    }


def test_the_settings_type_stub_is_the_tables():
    from adcli.presets.stubs import STUB_PATH, type_stub

    assert STUB_PATH.read_text() == type_stub(), "stale: run `python -m adcli.presets.stubs`"


@pytest.mark.subprocess
def test_a_type_checker_sees_each_settings_type(tmp_path):
    pytest.importorskip("mypy")
    code = tmp_path / "use.py"
    code.write_text(
        "from adcli.presets.settings import ExpandSettings, StyleTransferSettings, T2ISettings\n"
        "def f(a: StyleTransferSettings, b: T2ISettings, c: ExpandSettings) -> None:\n"
        "    reveal_type(a.iterations)\n    reveal_type(b.guidance)\n    reveal_type(b.arch)\n    reveal_type(c.layers)\n"
        "    a.iterations = 3\n"
    )
    checked = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-error-summary", str(code)],
                             capture_output=True, text=True, cwd=PACKAGE.parent)
    revealed = [line.split("Revealed type is ")[1] for line in checked.stdout.splitlines() if "Revealed type" in line]
    assert revealed[:2] == ['"int"', '"float"'] and revealed[3] == '"tuple[int, ...]"', checked.stdout
    assert all(f"Literal['{arch}']" in revealed[2] for arch in ("auto", "sd15", "sdxl")), checked.stdout
    assert "read-only" in checked.stdout or "frozen" in checked.stdout  # the settings are frozen
