"""YAML → typed settings: built-in preset, then a user preset, then command-line overrides."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from adcli.errors import PresetError
from adcli.presets.settings import (
    AppearanceSettings,
    ExpandSettings,
    FinetuneVaeSettings,
    StyleTransferSettings,
    T2ISettings,
    TaskSettings,
    TextureSettings,
)

SETTINGS_FOR_TASK: dict[str, type[TaskSettings] | type[FinetuneVaeSettings]] = {
    "style-transfer": StyleTransferSettings,
    "appearance": AppearanceSettings,
    "texture": TextureSettings,
    "finetune-vae": FinetuneVaeSettings,
    "t2i": T2ISettings,
    "expand": ExpandSettings,
}


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings a run used and where they came from (all of it goes into PNG metadata)."""

    task: str
    settings: TaskSettings | FinetuneVaeSettings
    preset: str
    overrides: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self.settings)
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        return {"task": self.task, "preset": self.preset, "overrides": self.overrides, "settings": values}


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


def _check_type(name: str, value: Any, annotation: Any, source: str) -> Any:
    """Return ``value`` converted to ``annotation`` where that is lossless, else raise."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(name, value, inner[0], source)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(str(a) for a in args)
            raise PresetError(f"{source}: {name} must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise PresetError(f"{source}: {name} must be a list, got {value!r}")
        return tuple(_check_type(name, item, args[0], source) for item in value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise PresetError(f"{source}: {name} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PresetError(f"{source}: {name} must be a whole number, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PresetError(f"{source}: {name} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise PresetError(f"{source}: {name} must be text, got {value!r}")
        return str(value)
    return value


def _apply(values: dict[str, Any], layer: dict[str, Any], fields: dict[str, Any], source: str) -> None:
    unknown = sorted(str(key).replace("-", "_") for key in layer if str(key).replace("-", "_") not in fields)
    if unknown:
        known = ", ".join(sorted(fields))
        raise PresetError(f"{source}: unknown setting(s) {', '.join(unknown)} (known: {known})")
    for key, value in layer.items():
        name = str(key).replace("-", "_")
        values[name] = _check_type(name, value, fields[name], source)


def load_settings(
    task: str, preset: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ResolvedSettings:
    """Resolve the settings of ``task``: built-in preset ← user preset ← overrides (None = not given)."""
    cls = SETTINGS_FOR_TASK[task]
    fields = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    builtin = preset_path(task)
    _apply(values, _read_yaml(builtin), fields, f"built-in preset {builtin.name}")
    source = f"built-in:{task}"
    if preset is not None:
        user = Path(preset)
        _apply(values, _read_yaml(user), fields, f"preset {user}")
        source = str(user)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _apply(values, given, fields, "command line")
    missing = sorted(set(fields) - set(values))
    if missing:
        raise PresetError(f"preset for {task} does not set {', '.join(missing)}")
    settings = cls(**values)
    settings.validate()
    recorded = {k: list(v) if isinstance(v, tuple) else v for k, v in given.items()}
    return ResolvedSettings(task=task, settings=settings, preset=source, overrides=recorded)
