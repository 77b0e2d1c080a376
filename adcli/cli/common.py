"""The options of an image command, derived from the settings table and declared nowhere else.

``@image_command("texture")`` appends to a command's signature one ``Annotated[…,
typer.Option()]`` parameter per setting of that task (presets/table.py: flag, help, and
``[default: …]`` from the built-in preset), then the run options every image command shares
(output, preset, batch options). Typer reads ``inspect.signature``, which honours
``__signature__``. The command receives their values as one :class:`CommonOptions`::

    @image_command("style-transfer", pair=True)
    def style_transfer(content: ..., style: ..., *, common: CommonOptions) -> None:
        run_command("style-transfer", common, build_jobs, inputs_given=bool(content or style))

No model library is imported here: ``--help``, ``--version`` and completion stay fast.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from adcli.cli import options as o
from adcli.errors import InputError
from adcli.presets import Setting, builtin_default
from adcli.presets.table import task_settings
from adcli.batch.plan import BatchOptions

RUN: tuple[tuple[str, Any, Any], ...] = (
    ("output", o.Output, Path("outputs")),
    ("preset", o.Preset, None),
    ("overwrite", o.Overwrite, False),
    ("quiet", o.Quiet, False),
)
BATCH: tuple[tuple[str, Any, Any], ...] = (
    ("manifest", o.Manifest, None),
    ("name", o.Name, None),
    ("resume", o.Resume, False),
    ("dry_run", o.DryRun, False),
    ("batch_size", o.BatchSize, 1),
    ("report", o.Report, None),
    ("animation", o.Animation, None),
    ("animation_every", o.AnimationEvery, None),
    ("sheet", o.Sheet, None),
    ("format", o.Format, None),
    ("quality", o.Quality, 95),
)


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) if value else "none"
    if value is None or value == "":
        return "none" if value is None else '""'
    return str(value)


def setting_option(task: str, setting: Setting) -> Any:
    """The ``Annotated[Optional[T], typer.Option(...)]`` of one setting in ``task``'s command.

    Every option defaults to None ("not given: keep the preset's value"); the preset's value is
    shown as ``[default: …]``. Values are checked by the preset loader, the same check as for YAML.
    """
    annotation = setting.annotation
    if typing.get_origin(annotation) is Literal:
        choices = "|".join(map(str, typing.get_args(annotation)))
        help_text = f"{setting.help_in(task)} One of {choices.replace('|', ', ')}."
    else:
        choices, help_text = None, setting.help_in(task)
    help_text += f" \\[default: {_default_text(builtin_default(task, setting.name))}]"
    names = [setting.flag] + ([setting.short] if setting.short else [])
    metavar = setting.metavar or (choices and f"[{choices}]")
    if annotation is bool:
        flag = setting.flag[2:]
        return Annotated[Optional[bool], typer.Option(f"--{flag}/--no-{flag}", help=help_text, metavar="", show_default=False)]
    if typing.get_origin(annotation) is tuple and typing.get_args(annotation)[0] is str:
        return Annotated[Optional[list[str]], typer.Option(*names, help=help_text, metavar=metavar, show_default=False)]
    python_type = annotation if annotation in (int, float) else str
    return Annotated[Optional[python_type], typer.Option(*names, help=help_text, metavar=metavar, show_default=False)]


def parse_layers(text: str | None) -> list[int] | None:
    """``"10,11,12"`` or ``"-6,-5"`` → list of ints."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise InputError(f"--layers {text!r} must be comma-separated whole numbers, e.g. 10,11,12 or -6,-5,-4") from None


def _setting_value(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key == "layers":
        return parse_layers(value)
    if isinstance(value, list):
        return tuple(value)
    return value


@dataclass(frozen=True)
class CommonOptions:
    """The values of a command's setting options (only those given) and of its run options."""

    output: Path = Path("outputs")
    preset: Path | None = None
    overwrite: bool = False
    quiet: bool = False
    batch: BatchOptions = field(default_factory=BatchOptions)
    settings: dict[str, Any] = field(default_factory=dict)

    def overrides(self) -> dict[str, Any]:
        """The preset settings given on the command line."""
        return dict(self.settings)


def image_command(
    task: str, *, pair: tuple[str, str] | None = None, sampling: bool = False, batch: bool = True,
    output: Any = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command its settings' options and the shared run options, passing their values as
    ``common``. ``pair``: the nouns of ``--pair`` (e.g. ``("contents", "style")``); ``sampling``:
    jobs run one at a time, so ``--batch-size`` is hidden; ``batch=False``: no batch options;
    ``output``: the command's own ``-o`` (an ``Annotated`` type, required)."""
    settings = [(s.name, setting_option(task, s), None) for s in task_settings(task)]
    batch_options = [(name, o.SamplingBatchSize if sampling and name == "batch_size" else kind, default) for name, kind, default in BATCH]
    run = [
        *[("output", output, inspect.Parameter.empty) if name == "output" and output is not None else (name, kind, default) for name, kind, default in RUN],
        *([("pair", o.pair_option(*pair), o.PairMode.product)] if pair else []),
        *(batch_options if batch else []),
    ]
    shared = [*settings, *run]
    setting_names = {name for name, _, _ in settings}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "common"]
        clash = {p.name for p in own} & {name for name, _, _ in shared}
        if "common" not in signature.parameters or clash:
            raise TypeError(f"{command.__name__} must take `common` and none of the shared options ({', '.join(sorted(clash))})")
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, annotation, default in shared
        ]
        added.sort(key=lambda p: p.default is not inspect.Parameter.empty)  # a required -o first

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name, default) for name, _, default in shared}
            given = {k: _setting_value(k, v) for k, v in values.items() if k in setting_names and v is not None}
            options = BatchOptions(
                pair=o.PairMode(values.get("pair", o.PairMode.product)).value,
                manifest=values.get("manifest"), name=values.get("name"), resume=values.get("resume", False),
                dry_run=values.get("dry_run", False), batch_size=values.get("batch_size", 1),
                report=values.get("report"), overwrite=values["overwrite"],
                animation=values.get("animation"), animation_every=values.get("animation_every"), sheet=values.get("sheet"),
                format=values.get("format") and o.ImageFormat(values["format"]).value, quality=values.get("quality", 95),
            )
            common = CommonOptions(values["output"], values["preset"], values["overwrite"], values["quiet"], options, given)
            return command(*args, **kwargs, common=common)

        parameters = sorted(own, key=lambda p: p.kind == inspect.Parameter.KEYWORD_ONLY) + added
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
