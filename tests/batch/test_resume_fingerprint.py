"""--resume reruns a job exactly when its pixels could change: every pixel setting of every
command, and every input image of every role (each of several references too), is in the
fingerprint; the settings that do not change pixels are not. Checked with --dry-run --resume
against outputs made once per command (tiny model, 64 px, a step or two)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from adcli.presets import SETTINGS, TASK_KEYS, builtin_values
from adcli.tasks.registry import TASKS
from tests.support.batch_helpers import image, run
from tests.support.commands import COMMANDS, Command, write_inputs

# Written out here, not read from the code: the settings that change no pixel (where the work runs,
# how fast, how it is shown). Everything else a command takes must be in the fingerprint.
NON_PIXEL = {"device", "compile", "low_vram", "window_batch", "preview_every"}

# A value other than the run's for every setting that is not a bool (bools are toggled).
OTHER = {
    "model": "tiny-sdxl", "model_config": "configs-folder", "vae": "vae-folder", "loras": "ink.safetensors:0.5",
    "arch": "sd15", "controlnet": "other-controlnet", "dtype": "fp16", "seed": "7", "size": "48x48",
    "layers": "-1", "lr": "0.2", "iterations": "3", "content_weight": "0.5", "mask_content_weight": "0.5",
    "mode": "sample", "steps": "3", "ad_iterations": "2", "negative_prompt": "blurry", "guidance": "2",
    "strength": "0.3", "control_scale": "0.5", "tile": "xy", "window": "16", "stride": "2",
    "device": "cpu", "window_batch": "1", "preview_every": "5", "quantize": "int8",
}


def flag_args(command: Command, key: str) -> list[str]:
    setting = SETTINGS[key]
    if setting.annotation is bool:
        current = command.settings.get(key, builtin_values(command.task)[key])
        return [f"--no-{setting.flag[2:]}" if current else setting.flag]
    if key == "layers":
        return [f"--layers={OTHER[key]}"]
    return [setting.flag, OTHER[key]]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Each command run once for real, in its own folder of inputs; tests that edit work on copies."""
    folders = {}
    for name, command in COMMANDS.items():
        folder = write_inputs(tmp_path_factory.mktemp(name))
        result = run(*command.argv(folder))
        assert result.exit_code == 0, result.output
        folders[name] = folder
    return folders


def statuses(folder: Path, command: Command, *extra: str) -> list[str]:
    """What --dry-run --resume would do with each job: "skip" or "new"."""
    result = run(*command.argv(folder, *extra, "--resume", "--dry-run"))
    assert result.exit_code == 0, result.output
    return ["skip" if "skip (done)" in line else "new" for line in result.stdout.splitlines() if line.strip()]


def copied(made: dict, name: str, tmp_path: Path) -> Path:
    """A copy of a command's folder, inputs and output: moved inputs still match by their bytes."""
    folder = tmp_path / name
    shutil.copytree(made[name], folder)
    return folder


SETTING_CASES = [(name, key) for name, command in COMMANDS.items() for key in TASK_KEYS[command.task]
                 if key not in NON_PIXEL and key not in command.refused]
IGNORED_CASES = [(name, key) for name, command in COMMANDS.items() for key in TASK_KEYS[command.task] if key in NON_PIXEL]
ROLE_CASES = [(name, role, index) for name, command in COMMANDS.items() for role, files in command.roles.items()
              for index in range(len(files))]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_same_run_elsewhere_is_skipped(made, name, tmp_path):
    assert statuses(copied(made, name, tmp_path), COMMANDS[name]) == ["skip"]


@pytest.mark.parametrize("name, key", SETTING_CASES, ids=[f"{n}-{k}" for n, k in SETTING_CASES])
def test_a_changed_pixel_setting_reruns_the_job(made, name, key):
    command = COMMANDS[name]
    assert statuses(made[name], command, *flag_args(command, key)) == ["new"], f"--resume ignored {SETTINGS[key].flag}"


@pytest.mark.parametrize("name, key", IGNORED_CASES, ids=[f"{n}-{k}" for n, k in IGNORED_CASES])
def test_a_setting_that_does_not_change_pixels_keeps_the_output(made, name, key):
    command = COMMANDS[name]
    assert statuses(made[name], command, *flag_args(command, key)) == ["skip"]


def edit(path: Path, label_map: bool) -> None:
    """New pixels at the same path; a label map stays one of the same colours (shifted a pixel)."""
    if not label_map:
        image(path, seed=99, size=(64, 64))
        return
    with Image.open(path) as opened:
        pixels = opened.convert("RGB")
    pixels.paste(pixels.crop((1, 0, pixels.width, pixels.height)), (0, 0))
    pixels.save(path)


@pytest.mark.parametrize("name, role, index", ROLE_CASES, ids=[f"{n}-{r}{i}" for n, r, i in ROLE_CASES])
def test_an_edited_input_of_any_role_reruns_the_job(made, name, role, index):
    """Edited in place (same path, new bytes), then put back for the other tests."""
    command = COMMANDS[name]
    edited = made[name] / command.roles[role][index]
    original = edited.read_bytes()
    try:
        edit(edited, label_map=role.endswith("mask"))
        assert statuses(made[name], command) == ["new"], f"--resume did not notice the edited {role} {edited.name}"
    finally:
        edited.write_bytes(original)
    assert statuses(made[name], command) == ["skip"]


@pytest.mark.parametrize("task", list(TASKS))
def test_every_image_role_of_every_task_has_a_case(task):
    roles = {role.name for role in TASKS[task].roles if role.kind in ("image", "images")}
    covered = {role for command in COMMANDS.values() if command.task == task for role in command.roles}
    assert roles - covered == set()
