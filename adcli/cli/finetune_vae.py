"""`adcli finetune-vae`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.console import RichReporter, handle_errors, stderr
from adcli.presets import load_settings
from adcli.tasks.finetune_vae import finetune_vae as run_finetune


@handle_errors
def finetune_vae(
    references: Annotated[list[Path], typer.Argument(help="Reference image(s) whose detail the decoder should learn, used at their own size.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the fine-tuned VAE (diffusers layout, safetensors); pass it to --vae later.", show_default=False)],
    steps: Annotated[Optional[int], typer.Option("--steps", help="Adam steps on the decoder (default 75).", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate on the decoder weights (default 1e-4).", show_default=False)] = None,
    crop_size: Annotated[Optional[int], typer.Option("--crop-size", help="Side of the random square crops, in pixels, a multiple of 8 (default 256).", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Crops per step (default 2).", show_default=False)] = None,
    preset: o.Preset = None,
    model: o.Model = None,
    model_config: o.ModelConfig = None,
    vae: Annotated[Optional[str], typer.Option("--vae", help="Start from this VAE (folder, hub id or .safetensors) instead of the model's.", show_default=False)] = None,
    device: o.Device = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the random crops and flips.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the folder named by -o if it is not empty (otherwise adcli refuses).")] = False,
    quiet: o.Quiet = False,
) -> None:
    """Fine-tune the VAE decoder on REFERENCES (L1 reconstruction, paper Sec. 3.5) for sharper decoding.

    Only the decoder changes. The reconstruction error before and after is printed; use the folder with --vae on any command.

    [bold]Examples[/]

      adcli finetune-vae bark.jpg -o bark-vae/ && adcli texture -r bark.jpg --vae bark-vae/

      adcli finetune-vae tiles/*.png -o tiles-vae/ --steps 150

      adcli finetune-vae samples/style/brick.jpg --model tiny -o brick-vae/ --steps 20
    """
    overrides = {
        "model": model, "model_config": model_config, "vae": vae, "device": device, "seed": seed,
        "steps": steps, "lr": lr, "crop_size": crop_size, "batch_size": batch_size,
    }
    resolved = load_settings("finetune-vae", preset, overrides)
    with RichReporter(quiet) as reporter:
        result = run_finetune(resolved, references, output, overwrite, reporter)
    if not quiet:
        stderr.print(
            f"reconstruction L1 (mean |x − D(E(x))|, 0–1 scale): before {result.l1_before:.4f}, "
            f"after {result.l1_after:.4f}"
        )
