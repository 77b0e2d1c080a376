"""The type stub of the settings classes (``settings_types.pyi``), written from the settings table.

The classes are made at run time (presets/settings.py), which type checkers cannot follow; the
stub says the same in source. ``python -m adcli.presets.stubs`` rewrites it after the table changes.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from adcli.presets.settings import _RULES, TaskSettings, class_name
from adcli.presets.table import SETTINGS, TASK_KEYS

STUB_PATH = Path(__file__).with_name("settings_types.pyi")

def _type_text(annotation: Any) -> str:
    """A setting's annotation as source text: ``int``, ``Optional[str]``, ``Literal['x', 'y']``, ``tuple[int, ...]``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is typing.Union:
        (inner,) = [a for a in args if a is not type(None)]
        return f"Optional[{_type_text(inner)}]"
    if origin is tuple:
        return f"tuple[{_type_text(args[0])}, ...]"
    return annotation.__name__


def type_stub() -> str:
    """The settings classes as a type checker should see them, derived from the table."""
    lines = [
        '"""Generated from adcli/presets/table.py by `python -m adcli.presets.stubs`: do not edit."""',
        "",
        "from dataclasses import dataclass",
        "from typing import Literal, Optional",
        "",
        "from adcli.presets.settings import TaskSettings, _ExpandRules, _FinetuneRules",
    ]
    for task in TASK_KEYS:
        lines += ["", "", "@dataclass(frozen=True)", f"class {class_name(task)}({_RULES.get(task, TaskSettings).__name__}):"]
        lines += [f"    {key}: {_type_text(SETTINGS[key].annotation)}" for key in TASK_KEYS[task]]
    return "\n".join(lines) + "\n"



if __name__ == "__main__":
    STUB_PATH.write_text(type_stub(), encoding="utf-8")
    print(f"wrote {STUB_PATH}")
