"""Every setting of every command reaches the maths: changing it from the run's value changes the
pixels (or, for the few a command does not use, provably does not). The API and the CLI share the
task functions (tests/api/test_api.py shows equal pixels), so a setting dropped between the
settings object and the engine fails here whichever way it is called.

The cases are checked against the settings table: a new setting of a command needs a case here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from safetensors.torch import load_file

import adcli
from adcli.outputs.metadata import NON_PIXEL_SETTINGS
from adcli.presets import SETTINGS, TASK_KEYS
from tests.support.batch_helpers import image

MASKS = Path(__file__).resolve().parents[2] / "samples" / "masks"


@dataclass(frozen=True)
class Case:
    """``setting`` set to ``value`` on top of the command's base call (plus ``base``), and whether
    the pixels must change (``changes``) or stay within float noise (a setting the command ignores,
    or one the --resume fingerprint leaves out)."""

    command: str
    setting: str
    value: Any
    base: dict[str, Any] = field(default_factory=dict)
    changes: bool = True
    why: str = ""

    @property
    def id(self) -> str:
        extra = ",".join(k for k, v in self.base.items() if v is True) or self.base.get("mode", "")
        return f"{self.command}-{self.setting}={self.value}" + (f"[{extra}]" if extra else "")


LAYOUT = {"layout": True}
SAMPLE = {"mode": "sample", "steps": 2, "ad_iterations": 1}
MASKED = {"masks": True, "size": "32"}  # the longer side: the output takes the target map's shape
CONTROL = {"control": True}

CASES = [
    # style transfer and appearance: the content latent is the start, nothing is drawn at random
    *[
        case
        for command, weight in (("style-transfer", 0.0), ("appearance", 0.0))
        for case in (
            Case(command, "size", "48"),
            Case(command, "layers", (-1,)),
            Case(command, "lr", 0.2),
            Case(command, "iterations", 3),
            Case(command, "content_weight", weight),  # the preset's λ (0.25 / 0.2) against none
            Case(command, "content_weight", 5.0),
            Case(command, "seed", 7, changes=False, why="the start is the content latent: nothing is random"),
        )
    ],
    Case("texture", "seed", 7),
    Case("texture", "size", "48x32"),
    Case("texture", "layers", (-1,)),
    Case("texture", "lr", 0.2),
    Case("texture", "iterations", 3),
    Case("texture", "tile", "xy"),
    Case("texture", "mode", "sample", base={"steps": 2, "ad_iterations": 1}),
    Case("texture", "content_weight", 5.0, changes=False, why="plain texture synthesis has no content image"),
    Case("texture", "mask_content_weight", 5.0, changes=False, why="used with label maps only"),
    Case("texture", "steps", 3, changes=False, why="--mode optimize runs --iterations"),
    Case("texture", "ad_iterations", 2, changes=False, why="--mode optimize runs --iterations"),
    Case("texture", "adain", True, changes=False, why="--mode optimize has no sampling step"),
    Case("texture", "seed", 7, base=SAMPLE),
    Case("texture", "lr", 0.2, base=SAMPLE),
    Case("texture", "layers", (-1,), base=SAMPLE),
    Case("texture", "tile", "xy", base=SAMPLE),
    Case("texture", "steps", 3, base=SAMPLE),
    Case("texture", "ad_iterations", 2, base=SAMPLE),
    Case("texture", "adain", True, base=SAMPLE),
    Case("texture", "iterations", 3, base=SAMPLE, changes=False, why="--mode sample runs --steps"),
    Case("texture", "seed", 7, base=MASKED),
    Case("texture", "mask_content_weight", 0.0, base=MASKED),
    Case("texture", "mask_content_weight", 5.0, base=MASKED),
    Case("texture", "lr", 0.2, base=MASKED),
    Case("texture", "iterations", 3, base=MASKED),
    Case("texture", "layers", (-1,), base=MASKED),
    Case("texture", "size", "48", base=MASKED),
    Case("texture", "tile", "xy", base=MASKED),
    Case("texture", "content_weight", 5.0, base=MASKED, changes=False, why="label maps weigh their init image by mask_content_weight"),
    Case("t2i", "seed", 7),
    Case("t2i", "size", "48x32"),
    Case("t2i", "layers", (-1,)),
    Case("t2i", "lr", 0.2),
    Case("t2i", "negative_prompt", "blurry"),
    Case("t2i", "steps", 3),
    Case("t2i", "ad_iterations", 2),
    Case("t2i", "adain", False),
    Case("t2i", "guidance", 2.0),
    Case("t2i", "tile", "x"),
    Case("t2i", "content_weight", 5.0, changes=False, why="λ applies to a --layout only"),
    Case("t2i", "strength", 0.3, changes=False, why="strength applies to a --layout only"),
    Case("t2i", "control_scale", 0.0, changes=False, why="no ControlNet loaded"),
    Case("t2i", "content_weight", 0.0, base=LAYOUT),
    Case("t2i", "content_weight", 5.0, base=LAYOUT),
    Case("t2i", "strength", 1.0, base=LAYOUT),
    Case("t2i", "seed", 7, base=LAYOUT),
    Case("t2i", "control_scale", 0.0, base=CONTROL),
    Case("t2i", "control_scale", 3.0, base=CONTROL),
    Case("expand", "seed", 7),
    Case("expand", "size", (128, 64)),
    Case("expand", "layers", (-1,)),
    Case("expand", "lr", 0.2),
    Case("expand", "steps", 3),
    Case("expand", "ad_iterations", 2),
    Case("expand", "adain", True),
    Case("expand", "window", 16),
    Case("expand", "stride", 2),
    Case("expand", "tile", "x"),
    Case("expand", "window_batch", 1, changes=False, why="windows batched or one at a time give the same pixels"),
    Case("finetune-vae", "seed", 7),
    Case("finetune-vae", "steps", 3),
    Case("finetune-vae", "lr", 1e-3),
    Case("finetune-vae", "crop_size", 24),
    Case("finetune-vae", "batch_size", 1),
]

BASE = {
    "style-transfer": {"size": "32", "iterations": 2, "seed": 0},
    "appearance": {"size": "32", "iterations": 2, "seed": 0},
    "texture": {"size": "32x32", "iterations": 2, "seed": 0},
    "t2i": {"size": "32x32", "steps": 2, "ad_iterations": 1, "seed": 0},
    "expand": {"size": (96, 64), "window": 8, "stride": 4, "steps": 2, "ad_iterations": 1, "seed": 0},
    "finetune-vae": {"steps": 2, "crop_size": 32, "batch_size": 2, "lr": 1e-2, "seed": 0},
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reach")
    return {
        "content": image(folder / "content.png", 1, (72, 48)),
        "style": image(folder / "style.png", 2, (40, 40)),
        "layout": image(folder / "layout.png", 3, (32, 32)),
        "control": image(folder / "control.png", 4, (32, 32)),
    }


@pytest.fixture(scope="module")
def models():
    loaded: dict[str, adcli.Model] = {}

    def get(controlnet: bool) -> adcli.Model:
        key = "controlnet" if controlnet else "plain"
        if key not in loaded:
            loaded[key] = adcli.load_model("tiny", device="cpu", **({"controlnet": "tiny"} if controlnet else {}))
        return loaded[key]

    return get


def make(command: str, models: Callable, files: dict, tmp_path: Path, settings: dict[str, Any]) -> np.ndarray:
    """The command's output as an array (finetune-vae: its decoder weights, flattened)."""
    settings = dict(settings)
    layout = settings.pop("layout", False)
    control = settings.pop("control", False)
    masks = settings.pop("masks", False)
    model = models(control)
    if command == "style-transfer":
        result = adcli.style_transfer(model, files["content"], files["style"], **settings)
    elif command == "appearance":
        result = adcli.appearance(model, files["content"], files["style"], **settings)
    elif command == "texture" and masks:
        [result] = adcli.texture(model, MASKS / "source_texture.png", source_mask=MASKS / "source_labels.png",
                                 target_mask=MASKS / "target_labels.png", **settings)
    elif command == "texture":
        [result] = adcli.texture(model, files["style"], **settings)
    elif command == "t2i":
        [result] = adcli.t2i(model, "a cat", files["style"], layout=files["layout"] if layout else None,
                             control=files["control"] if control else None, **settings)
    elif command == "expand":
        result = adcli.expand(model, files["style"], **settings)
    else:
        folder = adcli.finetune_vae(model, files["style"], tmp_path / "vae", overwrite=True, **settings)
        weights = load_file(folder / "diffusion_pytorch_model.safetensors")
        return np.concatenate([weights[k].numpy().ravel() for k in sorted(weights) if k.startswith("decoder.")])
    return np.asarray(result.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def base_results():
    """The base call's result per (command, base): made once for all the cases that share it."""
    return {}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_setting_changes_the_pixels_exactly_when_it_should(case, models, files, tmp_path, base_results):
    base = {**BASE[case.command], **case.base}
    assert base.get(case.setting) != case.value, "the case must change the setting"
    key = (case.command, repr(sorted(base.items())))
    if key not in base_results:
        base_results[key] = make(case.command, models, files, tmp_path, base)
    before = base_results[key]
    after = make(case.command, models, files, tmp_path, {**base, case.setting: case.value})
    if case.changes:
        assert before.shape != after.shape or not np.array_equal(before, after), (
            f"{case.command}: {case.setting}={case.value!r} gives the same result as {base.get(case.setting, 'the default')!r}"
        )
    else:
        assert before.shape == after.shape and np.abs(before - after).max() <= 1, (
            f"{case.command}: {case.setting}={case.value!r} changed the result, but {case.why}"
        )


@pytest.mark.parametrize("command", list(BASE))
def test_every_setting_of_every_command_has_a_case(command):
    """Loading settings (the model, dtype, device, …) are load_model's; run options show a run."""
    computed = {key for key in TASK_KEYS[command] if not SETTINGS[key].loading and not SETTINGS[key].run_option}
    covered = {case.setting for case in CASES if case.command == command} | set(BASE[command])
    assert computed - covered == set(), f"{command}: settings with no case"


def test_settings_the_resume_fingerprint_ignores_do_not_change_pixels():
    """NON_PIXEL_SETTINGS are left out of --resume's fingerprint: each computed one must be a
    ``changes=False`` case above (the loading ones are load_model's: device, compile, low_vram)."""
    for key in NON_PIXEL_SETTINGS:
        if SETTINGS[key].loading or SETTINGS[key].run_option:
            continue
        cases = [case for case in CASES if case.setting == key]
        assert cases and all(not case.changes for case in cases), key
