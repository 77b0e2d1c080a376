"""`adcli style-transfer`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.console import handle_errors
from adcli.cli.run import run_command
from adcli.tasks.style_transfer import style_transfer_jobs


@handle_errors
def style_transfer(
    content: Annotated[Optional[list[Path]], typer.Argument(help="Content images: files, folders or quoted globs; each image gives one result per style job.", show_default=False)] = None,
    style: Annotated[Optional[list[Path]], typer.Option("--style", "-s", metavar="IMAGE", help="Style reference. Single files are distilled together (repeat --style to join several); a folder or quoted glob gives one style job per image.", show_default=False)] = None,
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
    """Repaint CONTENT in the style of --style by optimizing its latent (paper Alg. 1).

    [bold]Examples[/]

      adcli style-transfer photo.jpg --style painting.png -o result.png

      adcli style-transfer a.jpg b.jpg --style s1.png --style s2.png --iterations 300

      adcli style-transfer photos/ --style 'styles/*.png' --name '{content}_{style}' --resume --report run.jsonl

      adcli style-transfer --manifest jobs.csv -o out/

      accelerate launch --multi_gpu --num_processes 4 -m adcli style-transfer photos/ --style styles/ -o out/ --resume

      adcli style-transfer samples/content/chelsea.jpg --style samples/style/hubble.jpg --model tiny --size 128x128
    """
    overrides = o.common_overrides(model, model_config, vae, dtype, device, seed, size, layers, lr, compile_unet, low_vram)
    overrides |= {"iterations": iterations, "content_weight": content_weight}
    batch = o.batch_options(pair, manifest, name, resume, dry_run, batch_size, report, overwrite)
    run_command(
        "style-transfer", preset, overrides,
        lambda resolved, reporter: style_transfer_jobs(resolved, content, style, reporter, batch.pair),
        output, overwrite, quiet, batch=batch, inputs_given=bool(content or style),
    )
