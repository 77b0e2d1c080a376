"""The options every image-making command shares, declared once.

``@image_command()`` appends them to a command's signature as ordinary ``Annotated[...,
typer.Option()]`` parameters (Typer reads ``inspect.signature``, which honours
``__signature__``) and hands the command their values as one :class:`CommonOptions` in its
``common`` parameter. A command declares only its own options::

    @image_command(pair=True, settings=("iterations", "content_weight"))
    def style_transfer(content: ..., style: ..., *, common: CommonOptions) -> None:
        run_command("style-transfer", common, common.overrides(), build_jobs, inputs_given=bool(content or style))
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adcli.cli import options as o
from adcli.tasks.plan import BatchOptions

# (parameter name, its Annotated option type, default). The order is the order in --help.
SHARED: tuple[tuple[str, Any, Any], ...] = (
    ("output", o.Output, Path("outputs")),
    ("preset", o.Preset, None),
    ("model", o.Model, None),
    ("model_config", o.ModelConfig, None),
    ("vae", o.Vae, None),
    ("dtype", o.Dtype, None),
    ("device", o.Device, None),
    ("seed", o.Seed, None),
    ("size", o.Size, None),
    ("layers", o.Layers, None),
    ("lr", o.Lr, None),
    ("compile_unet", o.Compile, None),
    ("low_vram", o.LowVram, None),
    ("overwrite", o.Overwrite, False),
    ("quiet", o.Quiet, False),
)
PAIR = ("pair", o.Pair, o.PairMode.product)
BATCH: tuple[tuple[str, Any, Any], ...] = (
    ("manifest", o.Manifest, None),
    ("name", o.Name, None),
    ("resume", o.Resume, False),
    ("dry_run", o.DryRun, False),
    ("batch_size", o.BatchSize, 1),
    ("report", o.Report, None),
    ("format", o.Format, None),
    ("quality", o.Quality, 95),
)
_SETTINGS = ("model", "model_config", "vae", "dtype", "device", "seed", "size", "lr", "low_vram")
# Options that only override the preset setting of the same name, which a command may ask for by
# name (``@image_command(settings=("iterations",))``); their values join ``common.overrides()``.
SETTING_OPTIONS: dict[str, Any] = {
    "iterations": o.Iterations, "content_weight": o.ContentWeight, "steps": o.Steps,
    "ad_iterations": o.AdIterations, "adain": o.Adain, "tile": o.Tile,
}


@dataclass(frozen=True)
class CommonOptions:
    """The shared options' values. ``None`` means "not given: keep the preset's value"."""

    output: Path = Path("outputs")
    preset: Path | None = None
    model: str | None = None
    model_config: str | None = None
    vae: str | None = None
    dtype: str | None = None
    device: str | None = None
    seed: int | None = None
    size: str | None = None
    layers: str | None = None
    lr: float | None = None
    compile_unet: bool | None = None
    low_vram: bool | None = None
    overwrite: bool = False
    quiet: bool = False
    batch: BatchOptions = field(default_factory=BatchOptions)
    settings: dict[str, Any] = field(default_factory=dict)  # the command's SETTING_OPTIONS

    def overrides(self) -> dict[str, Any]:
        """The preset settings these options override (the command adds its own)."""
        values = {name: getattr(self, name) for name in _SETTINGS}
        return values | {"layers": o.parse_layers(self.layers), "compile": self.compile_unet} | self.settings

    @classmethod
    def from_values(cls, values: dict[str, Any], settings: tuple[str, ...] = ()) -> CommonOptions:
        batch = BatchOptions(
            pair=o.PairMode(values.get("pair", o.PairMode.product)).value,
            manifest=values["manifest"], name=values["name"], resume=values["resume"], dry_run=values["dry_run"],
            batch_size=values["batch_size"], report=values["report"], overwrite=values["overwrite"],
            format=values["format"] and o.ImageFormat(values["format"]).value, quality=values["quality"],
        )
        return cls(**{name: values[name] for name, _, _ in SHARED}, batch=batch, settings={name: values[name] for name in settings})


def image_command(
    *, pair: bool = False, settings: tuple[str, ...] = (), **annotations: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the shared options (``--pair`` with ``pair=True``; the ``settings`` named from
    SETTING_OPTIONS) and pass their values as ``common``. ``annotations`` replace a shared option's
    type for this command, e.g. its own ``--size`` help:
    ``@image_command(size=Annotated[Optional[str], typer.Option("--size", help=…)])``."""
    shared = [*[(name, SETTING_OPTIONS[name], None) for name in settings], *SHARED, *([PAIR] if pair else []), *BATCH]
    unknown = set(annotations) - {name for name, _, _ in shared}
    if unknown:
        raise TypeError(f"image_command: no shared option(s) {', '.join(sorted(unknown))}")

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "common"]
        clash = {p.name for p in own} & {name for name, _, _ in shared}
        if "common" not in signature.parameters or clash:
            raise TypeError(f"{command.__name__} must take `common` and none of the shared options ({', '.join(sorted(clash))})")
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotations.get(name, annotation))
            for name, annotation, default in shared
        ]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name, default) for name, _, default in shared}
            return command(*args, **kwargs, common=CommonOptions.from_values(values, settings))

        parameters = sorted(own, key=lambda p: p.kind == inspect.Parameter.KEYWORD_ONLY) + added
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
