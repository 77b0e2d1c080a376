"""`adcli sheet`: a contact sheet of adcli outputs. Light to import: no torch at module level."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o


def _make_sheet(paths: list[str], output: Path, rows: str | None, cols: str | None, max_cells: int,
                overwrite: bool, quiet: bool) -> None:
    from rich.markup import escape

    from adcli.cli.console import stderr, stdout
    from adcli.views.sheet import make_sheet

    result = make_sheet(paths, output, rows, cols, max_cells=max_cells, overwrite=overwrite)
    if not quiet:
        for path in result.skipped:
            stderr.print(f"skipped {escape(str(path))}: no adcli settings in it")
        for note in result.notes:
            stderr.print(f"[yellow]note:[/] {escape(note)}")
        stderr.print(f"{result.shown} image(s), rows: {escape(result.rows)}, columns: {escape(result.cols)}")
    stdout.print(escape(str(result.path)))


def sheet(
    paths: Annotated[list[str], typer.Argument(help="adcli outputs: files, folders (with their subfolders) or quoted globs.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The sheet: a .png, .jpg or .webp file.", show_default=False)],
    rows: Annotated[Optional[str], typer.Option("--rows", help="Field along the rows: an input (content, style, prompt, reference…), a setting (lr, iterations…) or seed. Default: content for transfers, prompt for t2i, reference for textures.", show_default=False)] = None,
    cols: Annotated[Optional[str], typer.Option("--cols", help="Field along the columns. Default: style for transfers and t2i, seed for textures.", show_default=False)] = None,
    max_cells: Annotated[int, typer.Option("--max-cells", help="At most this many cells; the rest is left out, with a note.")] = 400,
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
) -> None:
    """Lay adcli outputs out as a grid by two of their settings or inputs, from the metadata in each image.

    Input images are the row and column headers where the field is an image input. Images without adcli metadata are listed and skipped.

    [bold]Examples[/]

      adcli sheet outputs/batch/ -o sheet.png

      adcli sheet 'outputs/*.png' --rows lr --cols seed -o lr_vs_seed.png

      adcli sheet outputs/t2i/ --rows prompt --cols style --max-cells 100 -o prompts.webp
    """
    from adcli.cli.console import handle_errors

    handle_errors(_make_sheet)(paths, output, rows, cols, max_cells, overwrite, quiet)
