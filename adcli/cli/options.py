"""The run options image commands share (where results go, batches); the settings' options are
derived from the settings table in cli/common.py."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.presets import SETTINGS

Model = Annotated[Optional[str], typer.Option("--model", "-m", help=SETTINGS["model"].help, show_default=False)]
Device = Annotated[Optional[str], typer.Option("--device", help=SETTINGS["device"].help, show_default=False)]
Preset = Annotated[Optional[Path], typer.Option("--preset", help="A YAML preset layered over the built-in one (configs/<task>.yaml); command-line options still win.", show_default=False)]
Output = Annotated[Path, typer.Option("--output", "-o", help="A .png, .jpg/.jpeg or .webp path for a single result (its suffix picks the format), or a folder (created if needed).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs of the same name (otherwise adcli refuses a named file, and picks NAME-1.png… in a folder).", metavar="")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display; only written paths (stdout) and errors (stderr).", metavar="")]


# Batch options: every command that makes images takes these (see batch/runner.py).
class PairMode(str, Enum):
    product = "product"
    zip = "zip"


def pair_option(inputs: str, references: str) -> object:
    """``--pair``, in the words of the command's own inputs (``contents`` and ``style``, …)."""
    return Annotated[PairMode, typer.Option("--pair", help=f"How {inputs} meet {references} jobs: product (every one with every {references} job) or zip (the i-th with the i-th).")]


Manifest = Annotated[Optional[Path], typer.Option("--manifest", help="Jobs from a .csv (header row) or .jsonl file, one job a row: the inputs, and optionally name, seed and any preset setting. Relative paths are relative to the manifest.", show_default=False)]
Name = Annotated[Optional[str], typer.Option("--name", help="Output name template, e.g. '{content}_{style}_{seed}'. Fields: name, task, index, seed, item_seed and the command's inputs; '/' makes subfolders.", show_default=False)]
Resume = Annotated[bool, typer.Option("--resume", help="Skip jobs whose output exists with the same settings, inputs and seed in its metadata; a changed setting reruns the job.", metavar="")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List the jobs, their seeds and output paths, and stop (no model is loaded).", metavar="")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, max=1024, help="Optimize up to N images that share their reference(s) together in one UNet batch (same pictures as one at a time; faster on a GPU when memory allows).")]
# t2i and expand always sample one image at a time: their --batch-size is hidden (accepted, no effect).
SamplingBatchSize = Annotated[int, typer.Option("--batch-size", min=1, max=1024, hidden=True, help="No effect: sampling jobs run one at a time.")]
class ImageFormat(str, Enum):
    png = "png"
    jpg = "jpg"
    webp = "webp"


Format = Annotated[Optional[ImageFormat], typer.Option("--format", help="File format of the images written into an -o folder: png (default), jpg or webp. A file -o takes its suffix's format. The settings are stored in every format (adcli info, rerun, --resume).", show_default=False)]
Quality = Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality, 1–100 (PNG is lossless and ignores it).")]
Report = Annotated[Optional[Path], typer.Option("--report", help="A report of the run: .html (one page with a thumbnail, inputs, settings, time, status and loss curve per job, rewritten after each job) or .jsonl (one JSON line per job: index, name, status, output, seconds, error, seed, rank, losses).", show_default=False)]
Animation = Annotated[Optional[Path], typer.Option("--animation", help="Save the run as an animated .webp or .gif (frames decoded with the VAE; the last frame is the result). With several images, each gets OUTPUT.animation.webp beside it.", show_default=False)]
AnimationEvery = Annotated[Optional[int], typer.Option("--animation-every", min=1, help="A frame every N iterations/steps. Default: about 40 frames per run.", show_default=False)]
Sheet = Annotated[Optional[Path], typer.Option("--sheet", help="After the run, a contact sheet of its images (.png/.jpg/.webp), laid out by their inputs (see `adcli sheet`).", show_default=False)]

