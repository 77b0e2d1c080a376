"""`adcli texture`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.console import handle_errors
from adcli.cli.run import run_command
from adcli.tasks.texture import texture_jobs


@handle_errors
def texture(
    reference: Annotated[Optional[list[Path]], typer.Option("--reference", "-r", help="Texture exemplar; repeat it to blend several files. A folder or quoted glob gives one texture job per image.", show_default=False)] = None,
    num_images: Annotated[int, typer.Option("--num-images", min=1, help="How many textures to make, each from its own seed.")] = 1,
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
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
    manifest: o.Manifest = None,
    name: o.Name = None,
    resume: o.Resume = False,
    dry_run: o.DryRun = False,
    batch_size: o.BatchSize = 1,
    report: o.Report = None,
) -> None:
    """Synthesize a new texture like --reference from noise, by optimizing with the AD loss alone.

    [bold]Examples[/]

      adcli texture --reference bark.jpg --size 512x512 -o bark-new.png

      adcli texture -r moss.png --num-images 4 --seed 7 -o textures/

      adcli texture -r exemplars/ --num-images 2 --batch-size 4 --resume -o textures/

      adcli texture -r samples/style/brick.jpg --model tiny --size 128x128
    """
    overrides = o.common_overrides(model, model_config, vae, dtype, device, seed, size, layers, lr)
    overrides |= {"iterations": iterations}
    batch = o.batch_options(o.PairMode.product, manifest, name, resume, dry_run, batch_size, report, overwrite)
    run_command(
        "texture", preset, overrides,
        lambda resolved, reporter: texture_jobs(resolved, reference, reporter, num_images),
        output, overwrite, quiet, batch=batch, inputs_given=bool(reference),
    )
