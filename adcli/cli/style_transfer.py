"""`adcli style-transfer`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.common import CommonOptions, image_command
from adcli.cli.console import handle_errors
from adcli.cli.run import arguments, run_command


@handle_errors
@image_command("style-transfer", pair=("contents", "style"))
def style_transfer(
    content: Annotated[Optional[list[Path]], typer.Argument(metavar="CONTENT...", help="Content images: files, folders or quoted globs; each image gives one result per style job.", show_default=False)] = None,
    style: Annotated[Optional[list[Path]], typer.Option("--style", "-s", metavar="IMAGE", help="Style reference. Single files are distilled together (repeat --style to join several); a folder or quoted glob gives one style job per image.", show_default=False, rich_help_panel=o.INPUTS)] = None,
    *,
    common: CommonOptions,
) -> None:
    """Repaint CONTENT in the style of --style by optimizing its latent (paper Alg. 1).

    [bold]Examples[/]

      adcli style-transfer photo.jpg --style painting.png -o result.png

      adcli style-transfer a.jpg b.jpg --style s1.png --style s2.png --iterations 300

      adcli style-transfer photos/ --style 'styles/*.png' --name '{content}_{style}' --resume --report run.jsonl

      adcli style-transfer --manifest jobs.csv -o out/

      accelerate launch --multi_gpu --num_processes 4 -m adcli style-transfer photos/ --style styles/ -o out/ --resume

      adcli style-transfer samples/content/chelsea.jpg --style samples/style/hubble.jpg --model tiny --size 128x128
    """
    run_command(
        "style-transfer", common,
        lambda resolved, note: arguments().transfer_jobs("style-transfer", resolved, content, style, note, common.batch.pair),
        inputs_given=bool(content or style),
    )
