"""The `adcli` Typer app: it only registers the commands, one module each."""

from __future__ import annotations

import signal
from typing import Annotated, Optional

import typer

import adcli
from adcli.cli.appearance import appearance
from adcli.cli.console import stdout
from adcli.cli.expand import expand
from adcli.cli.finetune_vae import finetune_vae
from adcli.cli.info import info
from adcli.cli.rerun import rerun
from adcli.cli.sheet import sheet
from adcli.cli.style_transfer import style_transfer
from adcli.cli.t2i import t2i
from adcli.cli.texture import texture
from adcli.cli.tile_preview import tile_preview

app = typer.Typer(
    name="adcli",
    help="Attention Distillation (CVPR 2025) on Stable Diffusion 1.5, SDXL, FLUX.1 and SD3.5: transfer the style, "
    "appearance or texture of reference images. Try any command with --model tiny for a fast, "
    "download-free run (tiny random models draw noise; real results need the real weights).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        stdout.print(f"adcli {adcli.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Attention Distillation for Stable Diffusion."""


# Image commands have their own --help, in their Output and run panel (cli/common.py).
for name, command in (("style-transfer", style_transfer), ("appearance", appearance), ("texture", texture),
                      ("t2i", t2i), ("expand", expand), ("finetune-vae", finetune_vae)):
    app.command(name, add_help_option=False)(command)
app.command("tile-preview")(tile_preview)
app.command("info")(info)
app.command("rerun")(rerun)
app.command("sheet")(sheet)


def main() -> None:
    try:
        app(prog_name="adcli")
    except KeyboardInterrupt:  # a Ctrl-C while exiting, after the command has handled its own
        raise SystemExit(130) from None
    finally:
        # The command has reported and chosen its exit code: a Ctrl-C while the interpreter shuts down
        # (unloading torch takes a moment) would end the process by SIGINT instead (every thread of ours
        # is a daemon, so nothing waits to be interrupted).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
