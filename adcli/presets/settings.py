"""One frozen dataclass per task, generated from the settings table (presets/table.py).

Single values are checked against the table when a preset is loaded (presets/loader.py); what
involves two settings (a stride within its window, a size a task accepts) is checked here.

Type checkers cannot read classes made at run time, so they read ``settings_types.pyi``: the same
classes written out from the table (``python -m adcli.presets.stubs`` rewrites it; a test fails
when it is stale), where ``settings.iterations`` is an ``int``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, make_dataclass
from typing import TYPE_CHECKING, Any

from adcli.errors import PresetError
from adcli.presets.table import TASK_KEYS, SETTINGS

MAX_SIDE = 4096
AUTO_SIZE = "auto"  # the model's native pixel count (512² SD1.5, 1024² SDXL), the input's aspect ratio


@dataclass(frozen=True)
class SizeSpec:
    """What ``size`` asks for: ``exact`` (width, height), ``longer`` side N, or ``auto``."""

    kind: str
    width: int = 0
    height: int = 0

    @property
    def exact(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.kind == "exact" else None


def parse_size_spec(text: str, max_side: int = MAX_SIDE, allow: tuple[str, ...] = ("exact", "longer", "auto")) -> SizeSpec:
    """``WIDTHxHEIGHT``, ``N`` or ``auto`` → a :class:`SizeSpec`; sides multiples of 8 within ``max_side``."""
    text = str(text).strip()
    if text.lower() == AUTO_SIZE:
        spec = SizeSpec("auto")
    elif re.fullmatch(r"\d+", text):
        side = _side(text, "side", int(text), max_side)
        spec = SizeSpec("longer", side, side)
    else:
        width, height = parse_size(text, max_side)
        spec = SizeSpec("exact", width, height)
    if spec.kind not in allow:
        forms = {"exact": "WIDTHxHEIGHT", "longer": "N (the longer side)", "auto": "auto"}
        raise PresetError(f"size {text!r}: this command takes {' or '.join(forms[a] for a in allow)}")
    return spec


def parse_size(text: str, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``"WIDTHxHEIGHT"`` → (width, height), multiples of 8 within ``max_side``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not match:
        raise PresetError(f"size {text!r} is not WIDTHxHEIGHT, N (the longer side) or auto, e.g. 512x512")
    return _side(text, "width", int(match.group(1)), max_side), _side(text, "height", int(match.group(2)), max_side)


def _side(text: str, name: str, value: int, max_side: int) -> int:
    if value > max_side:
        raise PresetError(f"size {text}: {name} {value} is larger than {max_side} pixels")
    if value < 8 or value % 8:
        raise PresetError(f"size {text}: {name} {value} must be a positive multiple of 8 (e.g. 512x512)")
    return value


class TaskSettings:
    """Behaviour every generated settings class shares."""

    max_side = MAX_SIDE
    size_forms: tuple[str, ...] = ("exact", "longer", "auto")

    def validate(self) -> None:
        if hasattr(self, "size"):
            parse_size_spec(self.size, self.max_side, self.size_forms)
        if hasattr(self, "layers") and not self.layers:
            raise PresetError("layers must name at least one self-attention layer")

    def size_spec(self) -> SizeSpec:
        return parse_size_spec(self.size, self.max_side, self.size_forms)

    def as_dict(self) -> dict[str, Any]:
        return {name: list(value) if isinstance(value, tuple) else value for name, value in self.__dict__.items()}


class _ExpandRules(TaskSettings):
    max_side = 16384
    size_forms = ("exact",)

    def validate(self) -> None:
        super().validate()
        if self.stride > self.window:
            raise PresetError(f"stride ({self.stride}) must not be larger than the window ({self.window})")


class _FinetuneRules(TaskSettings):
    def validate(self) -> None:
        super().validate()
        if self.crop_size % 8:
            raise PresetError(f"crop_size must be a multiple of 8, got {self.crop_size}")


_RULES: dict[str, type] = {"expand": _ExpandRules, "finetune-vae": _FinetuneRules}


def class_name(task: str) -> str:
    """``style-transfer`` → ``StyleTransferSettings`` (``t2i`` → ``T2ISettings``)."""
    return "".join(part.upper() if part == "t2i" else part.capitalize() for part in re.split(r"[-_]", task)) + "Settings"


def _settings_class(task: str) -> type:
    fields = [(key, SETTINGS[key].annotation) for key in TASK_KEYS[task]]
    cls = make_dataclass(class_name(task), fields, bases=(_RULES.get(task, TaskSettings),), frozen=True)
    cls.__doc__ = f"The settings of `adcli {task}` (keys and types from presets/table.py)."
    cls.__module__ = __name__
    return cls


# One class per task in the table (a new task needs no line here); the named ones for imports.
SETTINGS_FOR_TASK: dict[str, type[TaskSettings]] = {task: _settings_class(task) for task in TASK_KEYS}

if TYPE_CHECKING:
    from adcli.presets.settings_types import (
        AppearanceSettings,
        ExpandSettings,
        FinetuneVaeSettings,
        StyleTransferSettings,
        T2ISettings,
        TextureSettings,
    )
else:
    StyleTransferSettings = SETTINGS_FOR_TASK["style-transfer"]
    AppearanceSettings = SETTINGS_FOR_TASK["appearance"]
    TextureSettings = SETTINGS_FOR_TASK["texture"]
    T2ISettings = SETTINGS_FOR_TASK["t2i"]
    ExpandSettings = SETTINGS_FOR_TASK["expand"]
    FinetuneVaeSettings = SETTINGS_FOR_TASK["finetune-vae"]
T2iSettings = T2ISettings
