"""`adcli expand`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli.common import CommonOptions, image_command
from adcli.cli.console import handle_errors
from adcli.cli.run import run_command
from adcli.tasks.expand import expand_jobs

Size = Annotated[Optional[str], typer.Option("--size", help="Output size WIDTHxHEIGHT in pixels, multiples of 8, any size up to 16384 per side (e.g. 2048x1024).", show_default=False)]


@handle_errors
@image_command(settings=("steps", "ad_iterations", "adain", "tile"), size=Size)
def expand(
    reference: Annotated[Optional[list[Path]], typer.Option("--reference", "-r", metavar="IMAGE", help="Texture exemplar (resized to one window, 512 px on SD1.5); repeat it to blend several files. A folder or quoted glob gives one expansion job per image.", show_default=False)] = None,
    num_images: Annotated[int, typer.Option("--num-images", min=1, help="How many expansions to make, each from its own seed.")] = 1,
    window: Annotated[Optional[int], typer.Option("--window", help="Window side in latents (64 = 512 px for SD1.5).", show_default=False)] = None,
    stride: Annotated[Optional[int], typer.Option("--stride", help="Latents between neighbouring windows; smaller overlaps more and runs slower.", show_default=False)] = None,
    window_batch: Annotated[Optional[int], typer.Option("--window-batch", help="Windows per UNet batch: larger uses the GPU better and needs more memory.", show_default=False)] = None,
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
    overrides = common.overrides() | {"window": window, "stride": stride, "window_batch": window_batch}
    run_command(
        "expand", common, overrides,
        lambda resolved, reporter: expand_jobs(resolved, reference, reporter, num_images),
        inputs_given=bool(reference),
    )
