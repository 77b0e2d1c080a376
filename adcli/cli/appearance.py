"""`adcli appearance`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.console import handle_errors
from adcli.cli.run import run_command
from adcli.tasks.appearance import appearance_jobs


@handle_errors
def appearance(
    structure: Annotated[Optional[list[Path]], typer.Argument(help="Structure images whose layout is kept: files, folders or quoted globs; each gives one result per appearance job.", show_default=False)] = None,
    appearance_ref: Annotated[Optional[list[Path]], typer.Option("--appearance", "-a", metavar="IMAGE", help="Appearance reference. Single files are distilled together (repeat it to join several); a folder or quoted glob gives one job per image.", show_default=False)] = None,
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
    pair: o.Pair = o.PairMode.product,
    manifest: o.Manifest = None,
    name: o.Name = None,
    resume: o.Resume = False,
    dry_run: o.DryRun = False,
    batch_size: o.BatchSize = 1,
    report: o.Report = None,
) -> None:
    """Give STRUCTURE the appearance (colours, materials) of --appearance (paper Sec. 4.1).

    [bold]Examples[/]

      adcli appearance house.jpg --appearance autumn-house.jpg -o result.png

      adcli appearance shoes/ --appearance 'materials/*.jpg' --pair zip -o out/ --resume

      adcli appearance samples/content/coffee.jpg --appearance samples/style/gravel.jpg --model tiny --size 128x128
    """
    overrides = o.common_overrides(model, model_config, vae, dtype, device, seed, size, layers, lr, compile_unet, low_vram)
    overrides |= {"iterations": iterations, "content_weight": content_weight}
    batch = o.batch_options(pair, manifest, name, resume, dry_run, batch_size, report, overwrite)
    run_command(
        "appearance", preset, overrides,
        lambda resolved, reporter: appearance_jobs(resolved, structure, appearance_ref, reporter, batch.pair),
        output, overwrite, quiet, batch=batch, inputs_given=bool(structure or appearance_ref),
    )
