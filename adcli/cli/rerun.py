"""`adcli rerun`: make an output again from the settings, inputs and seed stored in it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.console import handle_errors
from adcli.cli.run import run_batch
from adcli.outputs.files import OUTPUT_FORMATS, is_image_file_path
from adcli.batch.plan import BatchOptions


@handle_errors
def rerun(
    image: Annotated[Path, typer.Argument(help="An image written by adcli.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="A .png, .jpg or .webp path or a folder. Default: beside IMAGE, as IMAGE-1 in its format.", show_default=False)] = None,
    device: o.Device = None,
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
) -> None:
    """Make IMAGE again: the same command, settings, inputs and seed (the inputs must still exist).

    [bold]Examples[/]

      adcli rerun outputs/chelsea_hubble.png

      adcli rerun outputs/chelsea_hubble.png -o again.png --device cuda:1
    """
    import dataclasses

    from adcli.batch.rerun import job_from_metadata

    job = job_from_metadata(image, device)
    if output is None:
        output = image.parent
        job = dataclasses.replace(job, output_name=image.stem.replace("{", "{{").replace("}", "}}"))  # literal, not a template
    # into a folder, the image is made again in its own format
    same_format = image.suffix.lower().lstrip(".") if image.suffix.lower() in OUTPUT_FORMATS else None
    image_format = None if is_image_file_path(output) else same_format
    run_batch([job], output, quiet, BatchOptions(overwrite=overwrite, format=image_format))
