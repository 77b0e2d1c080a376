"""`adcli style-transfer`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adcli.cli import options as o
from adcli.cli.console import handle_errors
from adcli.cli.run import run_command
from adcli.tasks.style_transfer import style_transfer_jobs


@handle_errors
def style_transfer(
    content: Annotated[list[Path], typer.Argument(help="Content image(s); each one gives one result.", show_default=False)],
    style: Annotated[list[Path], typer.Option("--style", "-s", metavar="IMAGE", help="Style reference; repeat it to distil several at once (their keys and values are joined).", show_default=False)],
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
    """Repaint CONTENT in the style of --style by optimizing its latent (paper Alg. 1).

    [bold]Examples[/]

      adcli style-transfer photo.jpg --style painting.png -o result.png

      adcli style-transfer a.jpg b.jpg --style s1.png --style s2.png --iterations 300

      adcli style-transfer samples/content/chelsea.jpg --style samples/style/hubble.jpg --model tiny --size 128x128
    """
    overrides = o.common_overrides(model, model_config, vae, dtype, device, seed, size, layers, lr, compile_unet, low_vram)
    overrides |= {"iterations": iterations, "content_weight": content_weight}
    run_command(
        "style-transfer", preset, overrides,
        lambda resolved, reporter: style_transfer_jobs(resolved, content, style, reporter),
        output, overwrite, quiet,
    )
