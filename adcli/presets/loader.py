"""YAML → typed settings, in layers: the built-in preset, its values for the model's architecture,
a user preset (and its values for the architecture), then overrides (command line or API).

A preset may hold per-architecture values under ``by_arch:`` (``configs/t2i.yaml``: SD1.5 runs
3 AD iterations at guidance 7.5, SDXL 2 at 7). The architecture is the ``arch`` setting when it
names one, else the caller's (the API knows its loaded model), else the model's as probed from
its configs before it loads; when none of these can tell, the by_arch values wait
(``ResolvedSettings.needs_arch``) and the runner resolves again once the model has loaded.

Every value is checked against the settings table (presets/table.py): its type, that a number is
finite and within its range. Messages name the key the way its source spells it: a setting
placeholder for the command line (the CLI spells it ``--lr``, see adcli/errors.py), ``lr`` in a
preset file, a manifest or a Python call.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from adcli.engine.defaults import DEFAULT_MODELS
from adcli.engine.probe import probe_model
from adcli.errors import ModelLoadError, PresetError, setting
from adcli.presets.settings import SETTINGS_FOR_TASK
from adcli.presets.table import ARCHS, SETTINGS, TASK_KEYS, Setting

COMMAND_LINE = "command line"
MANIFEST_ROW = "manifest row"  # the caller names the file and line
BY_ARCH = "by_arch"


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings a run used and where they came from (all of it goes into image metadata).

    ``arch``: the architecture whose preset values were used (None: none were needed, or it is
    not known yet); ``needs_arch``: per-architecture values apply but the architecture is known
    only once the model has loaded (see :func:`for_arch`).
    """

    task: str
    settings: Any
    preset: str
    overrides: dict[str, Any]
    arch: str | None = None
    needs_arch: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "preset": self.preset, "overrides": self.overrides, "settings": self.settings.as_dict()}


@dataclass(frozen=True)
class PresetLayer:
    """One preset file: its checked values, and its checked values per architecture."""

    values: dict[str, Any]
    by_arch: dict[str, dict[str, Any]]

    def keys_by_arch(self) -> set[str]:
        return {key for values in self.by_arch.values() for key in values}


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


def _layer(task: str, data: dict[str, Any], source: str) -> PresetLayer:
    """A preset file's mapping checked: its settings, and a ``by_arch:`` mapping of architecture →
    settings. Loading settings (the model, its precision) cannot differ by architecture."""
    flat = {key: value for key, value in data.items() if key != BY_ARCH}
    values: dict[str, Any] = {}
    _apply(task, values, flat, source)
    sections = data.get(BY_ARCH) or {}
    if not isinstance(sections, dict):
        raise PresetError(f"{source}: {BY_ARCH} must map an architecture ({', '.join(ARCHS)}) to settings")
    by_arch: dict[str, dict[str, Any]] = {}
    for arch, section in sections.items():
        where = f"{source}: {BY_ARCH}: {arch}"
        if arch not in ARCHS:
            raise PresetError(f"{source}: {BY_ARCH} names architecture {arch!r}; known: {', '.join(ARCHS)}")
        if not isinstance(section, dict):
            raise PresetError(f"{where} must be a mapping of setting: value")
        for raw in section:
            key = str(raw).replace("-", "_")
            if key in SETTINGS and SETTINGS[key].loading:
                raise PresetError(f"{where}: {raw} belongs to the model and cannot differ by architecture")
        by_arch[arch] = {}
        _apply(task, by_arch[arch], section, where)
    return PresetLayer(values, by_arch)


@functools.lru_cache(maxsize=None)
def builtin_layer(task: str) -> PresetLayer:
    """The built-in preset of ``task``, read and checked once per process."""
    path = preset_path(task)
    layer = _layer(task, _read_yaml(path), f"built-in preset {path.name}")
    missing = [key for key in TASK_KEYS[task] if key not in layer.values]
    if missing:
        raise PresetError(f"built-in preset {path.name} does not set {', '.join(missing)}")
    return layer


def builtin_values(task: str) -> dict[str, Any]:
    """The built-in defaults of ``task`` (for every architecture: see :func:`builtin_arch_defaults`)."""
    return dict(builtin_layer(task).values)


def builtin_default(task: str, key: str) -> Any:
    return builtin_layer(task).values[key]


def builtin_arch_defaults(task: str, key: str) -> dict[str, Any]:
    """The architectures whose built-in value of ``key`` differs from the task's default, and those values."""
    layer = builtin_layer(task)
    return {arch: values[key] for arch, values in layer.by_arch.items() if key in values and values[key] != layer.values[key]}


def loading_defaults(task: str = "style-transfer") -> dict[str, Any]:
    """The loading settings of ``task``'s built-in preset: ``adcli.load_model``'s defaults."""
    return {key: value for key, value in builtin_values(task).items() if SETTINGS[key].loading}


def default_model(arch: str | None) -> str:
    """The model an architecture stands for when no model is named (``--arch sdxl``)."""
    return DEFAULT_MODELS[arch] if arch in DEFAULT_MODELS else loading_defaults()["model"]


@functools.lru_cache(maxsize=256)
def _probed_arch(model: str, model_config: str | None) -> str | None:
    """The model's architecture from its configs, without loading it; None when it cannot be told
    yet (a broken model is reported by the preflight check, with the job it belongs to)."""
    try:
        probe = probe_model(model, model_config)
    except ModelLoadError:
        return None
    return None if probe is None else probe.arch


def closest_key(key: str, valid: Sequence[str]) -> str | None:
    """The valid key ``key`` was most likely meant to be (a typo), or None."""
    found = difflib.get_close_matches(key, list(valid), n=1)
    return found[0] if found else None


def _label(named: Setting, source: str) -> str:
    """How a message names a setting: a placeholder from the command line (the CLI spells it as
    its flag), the key itself in a file, a manifest or a Python call."""
    return setting(named.name) if source == COMMAND_LINE else named.name


def parse_text(named: Setting, text: Any, source: str = COMMAND_LINE) -> Any:
    """A value written as text (an option, a CSV cell) as the setting's type; the preset loader
    checks it next. Text that is not of the type is a one-line error naming the setting."""
    if not isinstance(text, str):
        return text
    origin, args = typing.get_origin(named.annotation), typing.get_args(named.annotation)
    annotation = named.annotation
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("null", "none"):
            return None
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        parts = [part for part in re.split(r"[,;\s]+", text.strip()) if part]
        try:
            return [_scalar(args[0], part) for part in parts]
        except ValueError:
            raise PresetError(f"{_label(named, source)} {text!r} must be comma-separated whole numbers, e.g. 10,11,12 or -6,-5,-4") from None
    try:
        return _scalar(annotation, text)
    except ValueError:
        return check_value(named, text, source)  # raises: not a number / not true or false


def _scalar(annotation: Any, text: str) -> Any:
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            raise ValueError(text)
        return lowered in ("true", "yes", "on", "1")
    if annotation in (int, float):
        return annotation(text)
    return text


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
    task: str, preset: str | Path | None = None, overrides: dict[str, Any] | None = None, source: str = COMMAND_LINE,
    arch: str | None = None,
) -> ResolvedSettings:
    """Resolve the settings of ``task``: built-in preset ← its values for the architecture ← user
    preset ← its values for the architecture ← overrides (None = not given). ``arch``: the loaded
    model's architecture when the caller knows it (else the ``arch`` setting or a probe tells)."""
    if task not in SETTINGS_FOR_TASK:
        raise PresetError(f"unknown task {task!r}")
    builtin = builtin_layer(task)
    origin = f"built-in:{task}"
    user = PresetLayer({}, {})
    if preset is not None:
        user = _layer(task, _read_yaml(Path(preset)), f"preset {Path(preset)}")
        origin = str(preset)
    given: dict[str, Any] = {}
    _apply(task, given, {k: v for k, v in (overrides or {}).items() if v is not None}, source)
    flat = {**builtin.values, **user.values, **given}
    # per-architecture values matter only where nothing more specific sets the key
    pending = (builtin.keys_by_arch() - set(user.values) - set(given)) | (user.keys_by_arch() - set(given))
    named = flat.get("arch") if flat.get("arch") in ARCHS else None
    arch = named or arch
    if arch is None and pending:
        arch = _probed_arch(flat["model"], flat.get("model_config"))
    values = {**builtin.values, **builtin.by_arch.get(arch or "", {}), **user.values, **user.by_arch.get(arch or "", {}), **given}
    if named and "model" not in given and values["model"] in DEFAULT_MODELS.values():
        values["model"] = default_model(named)  # `--arch sd15` with no model: that architecture's default model
    settings = SETTINGS_FOR_TASK[task](**values)
    settings.validate()
    recorded = {k: list(v) if isinstance(v, tuple) else v for k, v in given.items()}
    return ResolvedSettings(
        task=task, settings=settings, preset=origin, overrides=recorded,
        arch=arch if pending else None, needs_arch=bool(pending) and arch is None,
    )


def for_arch(resolved: ResolvedSettings, arch: str) -> ResolvedSettings:
    """``resolved`` again, now that the model's architecture is known (``needs_arch``)."""
    if not resolved.needs_arch:
        return resolved
    preset = None if resolved.preset.startswith("built-in:") else resolved.preset
    again = load_settings(resolved.task, preset, resolved.overrides, arch=arch)
    return dataclasses.replace(again, preset=resolved.preset, overrides=resolved.overrides)
