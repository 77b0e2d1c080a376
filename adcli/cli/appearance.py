"""`adcli appearance`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adcli.cli import options as o
from adcli.cli.console import handle_errors
from adcli.cli.run import run_command
from adcli.tasks.appearance import appearance_jobs


@handle_errors
def appearance(
    structure: Annotated[list[Path], typer.Argument(help="Structure image(s) whose layout is kept; each gives one result.", show_default=False)],
    appearance_ref: Annotated[list[Path], typer.Option("--appearance", "-a", metavar="IMAGE", help="Appearance reference; repeat it for several.", show_default=False)],
    output: o.Output = Path("outputs"),
    preset: o.Preset = None,
    model: o.Model = None,
    model_config: o.ModelConfig = None,
    vae: o.Vae = None,
    dtype: o.Dtype = None,
    device: o.Device = None,
    seed: o.Seed = None,
    size: o.Size = None,
    layers: o.Layers = None,
    iterations: o.Iterations = None,
    lr: o.Lr = None,
    compile_unet: o.Compile = None,
    low_vram: o.LowVram = None,
    content_weight: o.ContentWeight = None,
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
) -> None:
    """Give STRUCTURE the appearance (colours, materials) of --appearance (paper Sec. 4.1).

    [bold]Examples[/]

      adcli appearance house.jpg --appearance autumn-house.jpg -o result.png

      adcli appearance shoes/*.jpg --appearance leather.png -o out/

      adcli appearance samples/content/coffee.jpg --appearance samples/style/gravel.jpg --model tiny --size 128x128
    """
    overrides = o.common_overrides(model, model_config, vae, dtype, device, seed, size, layers, lr, compile_unet, low_vram)
    overrides |= {"iterations": iterations, "content_weight": content_weight}
    run_command(
        "appearance", preset, overrides,
        lambda resolved, reporter: appearance_jobs(resolved, structure, appearance_ref, reporter),
        output, overwrite, quiet,
    )
