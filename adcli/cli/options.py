"""The run options image commands share (where results go, batches), the help panels every option
sits in, and the ranges of the run options that are numbers; the settings' options are derived
from the settings table in cli/common.py.

Numbers arrive as text and are checked by adcli (:func:`run_number`), not by Typer, so a bad
value is the same one-line error as a bad setting (``--num-images must be at least 1, got 0``).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from adcli.presets import SETTINGS, Setting
from adcli.presets.loader import COMMAND_LINE, check_value, parse_text

# The help panels, in the order --help shows them.
INPUTS = "Inputs"
METHOD = "What the method does"
MODEL = "Model"
RUN = "Output and run"
PANELS = (INPUTS, METHOD, MODEL, RUN)


def panel_of(setting: Setting) -> str:
    return MODEL if setting.loading else RUN if setting.run_option else METHOD


# Run options that are whole numbers: name → (range, default when not given).
RUN_NUMBERS: dict[str, tuple[Setting, int]] = {
    setting.name: (setting, default)
    for setting, default in (
        (Setting("num_images", int, "", minimum=1, maximum=100_000), 1),
        (Setting("batch_size", int, "", minimum=1, maximum=1024), 1),
        (Setting("quality", int, "", minimum=1, maximum=100), 95),
        (Setting("animation_every", int, "", minimum=1, maximum=1_000_000), 0),  # 0: the default spacing
    )
}


def run_number(name: str, text: str | int | None) -> int:
    """The value of a number run option, checked against its range (its default when not given)."""
    setting, default = RUN_NUMBERS[name]
    if text is None:
        return default
    return check_value(setting, parse_text(setting, text, COMMAND_LINE), COMMAND_LINE)


def number_option(flag: str, help_text: str, *names: str, panel: str = RUN, hidden: bool = False, default: Any = None) -> Any:
    """A whole-number run option, parsed by :func:`run_number` (``[default: …]`` in its help)."""
    shown = f" \\[default: {default}]" if default is not None else ""
    return Annotated[Optional[str], typer.Option(flag, *names, help=help_text + shown, metavar="", show_default=False,
                                                 hidden=hidden, rich_help_panel=panel)]


def num_images(help_text: str) -> Any:
    return number_option("--num-images", help_text, panel=INPUTS, default=1)


def _show_help(ctx: typer.Context, value: bool) -> None:
    """What click's own --help does (print the command's help, exit), as an option of the Output
    and run panel: the help pages of image commands then have no panel of --help alone."""
    if value and not ctx.resilient_parsing:
        typer.echo(ctx.get_help())
        raise typer.Exit()


Help = Annotated[Optional[bool], typer.Option("--help", "-h", is_eager=True, expose_value=False, callback=_show_help, metavar="", help="Show this message and exit.", rich_help_panel=RUN)]
Model = Annotated[Optional[str], typer.Option("--model", "-m", help=SETTINGS["model"].help, show_default=False)]
Device = Annotated[Optional[str], typer.Option("--device", help=SETTINGS["device"].help, show_default=False)]
Preset = Annotated[Optional[Path], typer.Option("--preset", metavar="YAML", help="A YAML preset layered over the built-in one (configs/<task>.yaml); command-line options still win.", show_default=False, rich_help_panel=RUN)]
Output = Annotated[Path, typer.Option("--output", "-o", metavar="PATH", help="A .png, .jpg/.jpeg or .webp path for a single result (its suffix picks the format), or a folder (created if needed).", rich_help_panel=RUN)]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs of the same name (otherwise adcli refuses a named file, and picks NAME-1.png… in a folder).", metavar="", rich_help_panel=RUN)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display; only written paths (stdout) and errors (stderr).", metavar="", rich_help_panel=RUN)]


# Batch options: every command that makes images takes these (see batch/runner.py).
class PairMode(str, Enum):
    product = "product"
    zip = "zip"


def pair_option(inputs: str, references: str) -> object:
    """``--pair``, in the words of the command's own inputs (``contents`` and ``style``, …)."""
    return Annotated[PairMode, typer.Option("--pair", metavar="", help=f"How {inputs} meet {references} jobs: product (every one with every {references} job) or zip (the i-th with the i-th).", rich_help_panel=INPUTS)]


Manifest = Annotated[Optional[Path], typer.Option("--manifest", metavar="FILE", help="Jobs from a .csv (header row) or .jsonl file, one job a row: the inputs, and optionally name, seed and any preset setting. Relative paths are relative to the manifest.", show_default=False, rich_help_panel=INPUTS)]
Name = Annotated[Optional[str], typer.Option("--name", metavar="TEMPLATE", help="Output name template, e.g. '{content}_{style}_{seed}'. Fields: name, task, index, seed, item_seed and the command's inputs; '/' makes subfolders.", show_default=False, rich_help_panel=RUN)]
Resume = Annotated[bool, typer.Option("--resume", help="Skip jobs whose output exists with the same settings, inputs and seed in its metadata; a changed setting reruns the job.", metavar="", rich_help_panel=RUN)]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List the jobs, their seeds and output paths, and stop (no model is loaded).", metavar="", rich_help_panel=RUN)]
BatchSize = number_option("--batch-size", "Optimize up to N images that share their reference(s) together in one UNet batch (same pictures as one at a time; faster on a GPU when memory allows).", default=1)
# t2i and expand always sample one image at a time: their --batch-size is hidden (accepted, no effect).
SamplingBatchSize = number_option("--batch-size", "No effect: sampling jobs run one at a time.", hidden=True)


class ImageFormat(str, Enum):
    png = "png"
    jpg = "jpg"
    webp = "webp"


Format = Annotated[Optional[ImageFormat], typer.Option("--format", metavar="", help="File format of the images written into an -o folder: png (default), jpg or webp. A file -o takes its suffix's format. The settings are stored in every format (adcli info, rerun, --resume).", show_default=False, rich_help_panel=RUN)]
Quality = number_option("--quality", "JPEG/WebP quality, 1–100 (PNG is lossless and ignores it).", default=95)
Report = Annotated[Optional[Path], typer.Option("--report", metavar="FILE", help="A report of the run: .html (one page with a thumbnail, inputs, settings, time, status and loss curve per job, rewritten after each job) or .jsonl (one JSON line per job: index, name, status, output, seconds, error, seed, rank, losses).", show_default=False, rich_help_panel=RUN)]
Animation = Annotated[Optional[Path], typer.Option("--animation", metavar="FILE", help="Save the run as an animated .webp or .gif (frames decoded with the VAE; the last frame is the result). With several images, each gets OUTPUT.animation.webp beside it.", show_default=False, rich_help_panel=RUN)]
AnimationEvery = number_option("--animation-every", "A frame every N iterations/steps. Default: about 40 frames per run.")
Sheet = Annotated[Optional[Path], typer.Option("--sheet", metavar="FILE", help="After the run, a contact sheet of its images (.png/.jpg/.webp), laid out by their inputs (see `adcli sheet`).", show_default=False, rich_help_panel=RUN)]
