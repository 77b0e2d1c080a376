"""The options of an image command, derived from the settings table and declared nowhere else.

``@image_command("texture")`` appends to a command's signature one ``Annotated[…,
typer.Option()]`` parameter per setting of that task (presets/table.py: flag, help, and
``[default: …]`` from the built-in preset, with each architecture's own where it differs), then
the run options every image command shares (output, preset, batch options), each in its help
panel (cli/options.py). Values arrive as text and are converted and checked by the preset loader,
so every bad value is one line naming its option. Typer reads ``inspect.signature``, which
honours ``__signature__``. The command receives their values as one :class:`CommonOptions`::

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

from adcli.batch.plan import BatchOptions
from adcli.cli import options as o
from adcli.errors import InputError
from adcli.presets import Setting, builtin_arch_defaults, builtin_default
from adcli.presets.loader import parse_text
from adcli.presets.table import task_settings

RUN: tuple[tuple[str, Any, Any], ...] = (
    ("output", o.Output, Path("outputs")),
    ("preset", o.Preset, None),
    ("overwrite", o.Overwrite, False),
    ("quiet", o.Quiet, False),
    ("help", o.Help, None),
)
BATCH: tuple[tuple[str, Any, Any], ...] = (
    ("manifest", o.Manifest, None),
    ("name", o.Name, None),
    ("resume", o.Resume, False),
    ("dry_run", o.DryRun, False),
    ("batch_size", o.BatchSize, None),
    ("report", o.Report, None),
    ("animation", o.Animation, None),
    ("animation_every", o.AnimationEvery, None),
    ("sheet", o.Sheet, None),
    ("format", o.Format, None),
    ("quality", o.Quality, None),
)


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) if value else "none"
    if value is None or value == "":
        return "none" if value is None else '""'
    return str(value)


def default_text(task: str, name: str) -> str:
    """``[default: …]`` of a setting: the built-in preset's value, and each architecture's own
    where it differs (``[default: 2; sd15: 3]``)."""
    by_arch = "".join(f"; {arch}: {_default_text(value)}" for arch, value in builtin_arch_defaults(task, name).items())
    return f"\\[default: {_default_text(builtin_default(task, name))}{by_arch}]"


def setting_option(task: str, setting: Setting) -> Any:
    """The ``Annotated[Optional[…], typer.Option(...)]`` of one setting in ``task``'s command.

    Every option defaults to None ("not given: keep the preset's value"); the preset's value is
    shown as ``[default: …]``. Values come as text and are checked by the preset loader, the
    same check as for YAML. No type placeholder where the name says what the value is: a
    metavar only for values with a form of their own (SIZE, LIST, LORA). A flag's ``--no-…``
    form is a hidden option of its own (:func:`negative_option`): one column less in --help.
    """
    annotation, panel = setting.annotation, o.panel_of(setting)
    help_text = setting.help_in(task)
    if typing.get_origin(annotation) is Literal:
        help_text += f" One of {', '.join(map(str, typing.get_args(annotation)))}."
    if annotation is bool:
        help_text += f" {negative_flag(setting)} turns it off. {default_text(task, setting.name)}"
        return Annotated[Optional[bool], typer.Option(setting.flag, help=help_text, metavar="", show_default=False, rich_help_panel=panel)]
    help_text += " " + default_text(task, setting.name)
    names = [setting.flag] + ([setting.short] if setting.short else [])
    many = typing.get_origin(annotation) is tuple and typing.get_args(annotation)[0] is str  # --lora, repeated
    kind = Optional[list[str]] if many else Optional[str]
    return Annotated[kind, typer.Option(*names, help=help_text, metavar=setting.metavar or "", show_default=False, rich_help_panel=panel)]


def negative_flag(setting: Setting) -> str:
    return "--no-" + setting.flag[2:]


def negative_option(setting: Setting) -> Any:
    return Annotated[Optional[bool], typer.Option(negative_flag(setting), hidden=True)]


def _setting_value(setting: Setting, value: Any) -> Any:
    """An option's text as the setting's type (a repeated option: a tuple of its values)."""
    if isinstance(value, list):
        return tuple(value)
    return parse_text(setting, value)


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
    ``output``: the command's own ``-o`` (an ``Annotated`` type, required). Register the command
    with ``add_help_option=False``: its ``--help`` is one of the run options. Number run options
    (``--num-images``, ``--quality``…) reach the command checked, as ints."""
    table = {s.name: s for s in task_settings(task)}
    in_panels = sorted(table.values(), key=lambda s: o.PANELS.index(o.panel_of(s)))  # --help shows them in this order
    settings = [(s.name, setting_option(task, s), None) for s in in_panels]
    negatives = {f"no_{s.name}": s for s in table.values() if s.annotation is bool}
    settings += [(name, negative_option(s), None) for name, s in negatives.items()]
    batch_options = [(name, o.SamplingBatchSize if sampling and name == "batch_size" else kind, default) for name, kind, default in BATCH]
    run = [
        *[("output", output, inspect.Parameter.empty) if name == "output" and output is not None else (name, kind, default) for name, kind, default in RUN],
        *([("pair", o.pair_option(*pair), o.PairMode.product)] if pair else []),
        *(batch_options if batch else []),
    ]
    shared = [*settings, *run]

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

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name, default) for name, _, default in shared}
            given = {k: _setting_value(table[k], v) for k, v in values.items() if k in table and v is not None}
            for name, setting in negatives.items():
                if values[name] and given.get(setting.name):
                    raise InputError(f"give {setting.flag} or {negative_flag(setting)}, not both")
                if values[name]:
                    given[setting.name] = False
            for name in o.RUN_NUMBERS:  # --num-images (the command's own), --batch-size, --quality…
                for found in (kwargs, values):
                    if name in found:
                        found[name] = o.run_number(name, found[name])
            options = BatchOptions(
                pair=o.PairMode(values.get("pair", o.PairMode.product)).value,
                manifest=values.get("manifest"), name=values.get("name"), resume=values.get("resume", False),
                dry_run=values.get("dry_run", False), batch_size=values.get("batch_size", 1),
                report=values.get("report"), overwrite=values["overwrite"],
                animation=values.get("animation"), animation_every=values.get("animation_every") or None, sheet=values.get("sheet"),
                format=values.get("format") and o.ImageFormat(values["format"]).value, quality=values.get("quality", 95),
            )
            common = CommonOptions(values["output"], values["preset"], values["overwrite"], values["quiet"], options, given)
            return command(*args, **kwargs, common=common)

        parameters = sorted(own, key=lambda p: p.kind == inspect.Parameter.KEYWORD_ONLY) + added
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
