"""`adcli texture`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.common import CommonOptions, image_command
from adcli.cli.console import handle_errors
from adcli.cli.run import arguments, run_command


NumImages = o.num_images("How many textures to make, each from its own seed.")


@handle_errors
@image_command("texture")
def texture(
    reference: Annotated[Optional[list[Path]], typer.Option("--reference", "-r", metavar="IMAGE", help="Texture exemplar; repeat it to blend several files. A folder or quoted glob gives one texture job per image.", show_default=False, rich_help_panel=o.INPUTS)] = None,
    num_images: NumImages = None,
    source_mask: Annotated[Optional[Path], typer.Option("--source-mask", metavar="IMAGE", help="Label map of the reference: a PNG with one flat colour per region (masked synthesis; needs --target-mask).", show_default=False, rich_help_panel=o.INPUTS)] = None,
    target_mask: Annotated[Optional[Path], typer.Option("--target-mask", metavar="IMAGE", help="Label map of the output, in the source map's colours; the output takes its aspect ratio, with the longer side of --size.", show_default=False, rich_help_panel=o.INPUTS)] = None,
    *,
    common: CommonOptions,
) -> None:
    """Synthesize a new texture like --reference from noise with the AD loss alone, by optimization or (--mode sample) by AD-guided sampling.

    With --source-mask and --target-mask, each target region gets the texture of the same-coloured source region.

    [bold]Examples[/]

      adcli texture --reference bark.jpg --size 512x512 -o bark-new.png

      adcli texture -r moss.png --num-images 4 --seed 7 -o textures/

      adcli texture -r bark.jpg --mode sample --steps 50 -o bark-sampled.png

      adcli texture -r samples/masks/source_texture.png --source-mask samples/masks/source_labels.png --target-mask samples/masks/target_labels.png

      adcli texture -r exemplars/ --num-images 2 --batch-size 4 --resume -o textures/

      adcli texture -r samples/style/brick.jpg --tile xy --model tiny --size 128x128
    """
    run_command(
        "texture", common,
        lambda resolved, note: arguments().texture_jobs(resolved, reference, note, num_images, source_mask, target_mask),
        inputs_given=bool(reference),
    )
