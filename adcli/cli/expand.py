"""`adcli expand`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.common import CommonOptions, image_command
from adcli.cli.console import handle_errors
from adcli.cli.run import arguments, run_command

NumImages = o.num_images("How many expansions to make, each from its own seed.")


@handle_errors
@image_command("expand", sampling=True)
def expand(
    reference: Annotated[Optional[list[Path]], typer.Option("--reference", "-r", metavar="IMAGE", help="Texture exemplar (resized to one window, 512 px on SD1.5); repeat it to blend several files. A folder or quoted glob gives one expansion job per image.", show_default=False, rich_help_panel=o.INPUTS)] = None,
    num_images: NumImages = None,
    *,
    common: CommonOptions,
) -> None:
    """Grow the texture of --reference to any --size with AD-guided sampling in overlapping windows (MultiDiffusion).

    [bold]Examples[/]

      adcli expand --reference bark.jpg --size 2048x1024 -o bark-wide.png

      adcli expand -r moss.png --size 4096x4096 --window-batch 8 --tile xy -o moss-4k.png

      adcli expand -r 'textures/*.jpg' --size 2048x2048 --name '{reference}_big' --resume -o big/

      adcli expand -r samples/style/grass.jpg --model tiny --size 256x128 --window 8 --steps 10
    """
    run_command(
        "expand", common,
        lambda resolved, note: arguments().expand_jobs(resolved, reference, note, num_images),
        inputs_given=bool(reference),
    )
