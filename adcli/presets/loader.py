"""YAML → typed settings: built-in preset, then a user preset, then overrides (command line or API).

Every value is checked against the settings table (presets/table.py): its type, that a number is
finite and within its range. Messages name the key the way its source spells it: ``--lr`` for
the command line, ``lr`` in a preset file or a Python call.
"""

from __future__ import annotations

import difflib
import functools
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from adcli.errors import PresetError
from adcli.presets.settings import SETTINGS_FOR_TASK
from adcli.presets.table import SETTINGS, TASK_KEYS, Setting

COMMAND_LINE = "command line"
MANIFEST_ROW = "manifest row"  # the caller names the file and line


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings a run used and where they came from (all of it goes into image metadata)."""

    task: str
    settings: Any
    preset: str
    overrides: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "preset": self.preset, "overrides": self.overrides, "settings": self.settings.as_dict()}


def preset_path(task: str) -> Path:
    """The built-in preset file of ``task`` (``configs/<task>.yaml``, shipped as package data)."""
    try:
        folder = Path(str(resources.files("adcli.configs")))
    except ModuleNotFoundError:  # running from a source checkout that was not pip-installed
        folder = Path(__file__).resolve().parents[2] / "configs"
    return folder / f"{task}.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"preset file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PresetError(f"cannot read preset file {path}: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise PresetError(f"preset file {path} is not valid YAML{line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PresetError(f"preset file {path} must be a mapping of setting: value")
    return data


@functools.lru_cache(maxsize=None)
def builtin_values(task: str) -> dict[str, Any]:
    """The built-in preset of ``task``, read and checked once per process."""
    path = preset_path(task)
    values: dict[str, Any] = {}
    _apply(task, values, _read_yaml(path), f"built-in preset {path.name}")
    missing = [key for key in TASK_KEYS[task] if key not in values]
    if missing:
        raise PresetError(f"built-in preset {path.name} does not set {', '.join(missing)}")
    return values


def builtin_default(task: str, key: str) -> Any:
    return builtin_values(task)[key]


def closest_key(key: str, valid: Sequence[str]) -> str | None:
    """The valid key ``key`` was most likely meant to be (a typo), or None."""
    found = difflib.get_close_matches(key, list(valid), n=1)
    return found[0] if found else None


def _label(setting: Setting, source: str) -> str:
    return setting.flag if source == COMMAND_LINE else setting.name


def check_value(setting: Setting, value: Any, source: str, annotation: Any = None) -> Any:
    """``value`` converted to the setting's type where that is lossless, else a PresetError."""
    annotation = setting.annotation if annotation is None else annotation
    where = "" if source in (COMMAND_LINE, MANIFEST_ROW) else f"{source}: "
    name = _label(setting, source)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return check_value(setting, value, source, next(a for a in args if a is not type(None)))
    if origin is Literal:
        if value not in args:
            raise PresetError(f"{where}{name} must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise PresetError(f"{where}{name} must be a list, got {value!r}")
        return tuple(check_value(setting, item, source, args[0]) for item in value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise PresetError(f"{where}{name} must be true or false, got {value!r}")
        return value
    if annotation in (int, float):
        whole = annotation is int
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not float(value).is_integer()):
            raise PresetError(f"{where}{name} must be a {'whole number' if whole else 'number'}, got {value!r}")
        if not math.isfinite(value):
            raise PresetError(f"{where}{name} must be a finite number, got {value!r}")
        value = int(value) if whole else float(value)
        low_ok = setting.minimum is None or value >= setting.minimum
        above_ok = setting.above is None or value > setting.above
        high_ok = setting.maximum is None or value <= setting.maximum
        if not (low_ok and above_ok and high_ok):
            raise PresetError(f"{where}{name} must be {setting.range_text()}, got {value!r}")
        return value
    if annotation is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise PresetError(f"{where}{name} must be text, got {value!r}")
        return str(value)
    return value


def _apply(task: str, values: dict[str, Any], layer: dict[str, Any], source: str) -> None:
    keys = TASK_KEYS[task]
    for raw in layer:
        key = str(raw).replace("-", "_")
        if key not in keys:
            hint = closest_key(key, keys)
            did_you_mean = f" (did you mean {hint}?)" if hint else f" (known: {', '.join(sorted(keys))})"
            raise PresetError(f"{source}: unknown setting {raw}{did_you_mean}")
    for raw, value in layer.items():
        key = str(raw).replace("-", "_")
        values[key] = check_value(SETTINGS[key], value, source)


def load_settings(
    task: str, preset: str | Path | None = None, overrides: dict[str, Any] | None = None, source: str = COMMAND_LINE
) -> ResolvedSettings:
    """Resolve the settings of ``task``: built-in preset ← user preset ← overrides (None = not given)."""
    if task not in SETTINGS_FOR_TASK:
        raise PresetError(f"unknown task {task!r}")
    values = dict(builtin_values(task))
    origin = f"built-in:{task}"
    if preset is not None:
        user = Path(preset)
        _apply(task, values, _read_yaml(user), f"preset {user}")
        origin = str(user)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _apply(task, values, given, source)
    settings = SETTINGS_FOR_TASK[task](**values)
    settings.validate()
    recorded = {k: list(v) if isinstance(v, tuple) else v for k, v in given.items()}
    return ResolvedSettings(task=task, settings=settings, preset=origin, overrides=recorded)
