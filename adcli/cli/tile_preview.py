"""`adcli tile-preview`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.console import handle_errors, stderr, stdout
from adcli.errors import InputError


@handle_errors
def tile_preview(
    image: Annotated[Path, typer.Argument(help="A picture made with --tile (or any picture).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="A .png, .jpg or .webp path, or a folder (default: IMAGE_2x2.png beside IMAGE).", show_default=False)] = None,
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
) -> None:
    """Repeat IMAGE 2×2 so that any seam shows, and measure the seams.

    The seam ratio is the step in colour across the wrap-around seam over the mean step between neighbouring pixel columns (rows) elsewhere: about 1 or less means no visible seam.

    [bold]Examples[/]

      adcli texture -r bark.jpg --tile xy -o bark.png && adcli tile-preview bark.png

      adcli texture -r bark.jpg --arch sd3 --tile xy -o bark-sd3.png && adcli tile-preview bark-sd3.png

      adcli tile-preview outputs/brick_texture.png -o preview.png
    """
    if not image.is_file():
        raise InputError(f"image {image} does not exist: check the path")
    from adcli.tasks.tile_preview import seam_verdict, tile_preview as make_preview

    path, seams = make_preview(image, output, overwrite)
    if not quiet:
        stderr.print(seam_verdict(seams))
    stdout.print(str(path))
