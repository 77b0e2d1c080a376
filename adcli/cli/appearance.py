"""`adcli appearance`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.common import CommonOptions, image_command
from adcli.cli.console import handle_errors
from adcli.cli.run import arguments, run_command


@handle_errors
@image_command("appearance", pair=("structures", "appearance"))
def appearance(
    structure: Annotated[Optional[list[Path]], typer.Argument(metavar="STRUCTURE...", help="Structure images whose layout is kept: files, folders or quoted globs; each gives one result per appearance job.", show_default=False)] = None,
    appearance_ref: Annotated[Optional[list[Path]], typer.Option("--appearance", "-a", metavar="IMAGE", help="Appearance reference. Single files are distilled together (repeat it to join several); a folder or quoted glob gives one job per image.", show_default=False, rich_help_panel=o.INPUTS)] = None,
    *,
    common: CommonOptions,
) -> None:
    """Give STRUCTURE the appearance (colours, materials) of --appearance (paper Sec. 4.1).

    [bold]Examples[/]

      adcli appearance house.jpg --appearance autumn-house.jpg -o result.png

      adcli appearance shoes/ --appearance 'materials/*.jpg' --pair zip -o out/ --resume

      adcli appearance samples/content/coffee.jpg --appearance samples/style/gravel.jpg --model tiny --size 128x128
    """
    run_command(
        "appearance", common,
        lambda resolved, note: arguments().transfer_jobs("appearance", resolved, structure, appearance_ref, note, common.batch.pair),
        inputs_given=bool(structure or appearance_ref),
    )
