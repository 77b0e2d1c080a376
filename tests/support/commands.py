"""Every image command with every input role filled (several references where a role takes a
set), as small command lines on the tiny model: shared by the tests that must reach every role
and setting (--resume's fingerprint, preflight)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adcli.presets import SETTINGS
from tests.support.batch_helpers import image

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
INPUT_FILES = ("content.png", "s1.png", "s2.png", "layout.png", "control.png")
MASK_FILES = ("source_texture.png", "source_labels.png", "target_labels.png")


@dataclass(frozen=True)
class Command:
    """A run of ``task`` whose inputs are files of a folder (see :func:`write_inputs`);
    ``roles``: role → its files; ``settings``: the values the run uses instead of the preset's."""

    task: str
    args: tuple[str, ...]
    roles: dict[str, tuple[str, ...]]
    settings: dict[str, Any]
    refused: tuple[str, ...] = ()  # settings this form of the command refuses outright

    def argv(self, folder: Path, *extra: str) -> list[str]:
        """The command line with its files in ``folder`` and its output in ``folder/out``."""
        args = [*self.args, "--model", "tiny", "--quiet", "-o", "out"]
        for key, value in self.settings.items():
            args += [SETTINGS[key].flag, str(value)]
        return [self.task, *[str(folder / a) if (folder / a).is_file() or a == "out" else a for a in args], *extra]


_QUICK = {"size": "64x64", "iterations": 2}
COMMANDS: dict[str, Command] = {
    "style-transfer": Command(
        "style-transfer", ("content.png", "--style", "s1.png", "--style", "s2.png"),
        {"content": ("content.png",), "style": ("s1.png", "s2.png")}, _QUICK),
    "appearance": Command(
        "appearance", ("content.png", "--appearance", "s1.png", "--appearance", "s2.png"),
        {"structure": ("content.png",), "appearance": ("s1.png", "s2.png")}, _QUICK),
    "texture": Command("texture", ("-r", "s1.png", "-r", "s2.png"), {"reference": ("s1.png", "s2.png")}, _QUICK),
    "texture-masked": Command(
        "texture", ("-r", "source_texture.png", "--source-mask", "source_labels.png", "--target-mask", "target_labels.png"),
        {"reference": ("source_texture.png",), "source_mask": ("source_labels.png",), "target_mask": ("target_labels.png",)},
        _QUICK, refused=("mode",)),  # label maps run by optimization only
    "t2i": Command(
        "t2i", ("a cat", "--style", "s1.png", "--style", "s2.png", "--layout", "layout.png", "--controlnet", "tiny",
                "--control", "control.png"),
        {"style": ("s1.png", "s2.png"), "layout": ("layout.png",), "control": ("control.png",)},
        {"size": "64x64", "steps": 2, "ad_iterations": 1}),
    "expand": Command(
        "expand", ("-r", "s1.png", "-r", "s2.png"), {"reference": ("s1.png", "s2.png")},
        {"size": "96x64", "window": 8, "stride": 4, "steps": 2, "ad_iterations": 1}),
}


def write_inputs(folder: Path) -> Path:
    """The files every command above reads: random pictures (one of another shape) and the sample label maps."""
    for seed, name in enumerate(INPUT_FILES):
        image(folder / name, seed=seed, size=(48, 64) if name == "s2.png" else (64, 64))
    for name in MASK_FILES:
        shutil.copy(SAMPLES / "masks" / name, folder / name)
    return folder
