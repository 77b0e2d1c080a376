"""`adcli finetune-vae`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from adcli.cli import options as o
from adcli.cli.common import CommonOptions, image_command
from adcli.cli.console import RichReporter, handle_errors, stderr
from adcli.presets import load_settings

Output = Annotated[Path, typer.Option("--output", "-o", metavar="FOLDER", rich_help_panel=o.RUN, help="Folder for the fine-tuned VAE (diffusers layout, safetensors); pass it to --vae later.", show_default=False)]


@handle_errors
@image_command("finetune-vae", batch=False, output=Output)
def finetune_vae(
    references: Annotated[list[Path], typer.Argument(metavar="REFERENCES...", help="Reference image(s) whose detail the decoder should learn, used at their own size.", show_default=False)],
    *,
    common: CommonOptions,
) -> None:
    """Fine-tune the VAE decoder on REFERENCES (L1 reconstruction, paper Sec. 3.5) for sharper decoding.

    Only the decoder changes. The reconstruction error before and after is printed; use the folder with --vae on any command.

    [bold]Examples[/]

      adcli finetune-vae bark.jpg -o bark-vae/ && adcli texture -r bark.jpg --vae bark-vae/

      adcli finetune-vae tiles/*.png -o tiles-vae/ --steps 150

      adcli finetune-vae samples/style/brick.jpg --model tiny -o brick-vae/ --steps 20
    """
    from adcli.tasks.finetune_vae import check_output_folder, finetune_vae as run_finetune, load_vae_for, read_references

    resolved = load_settings("finetune-vae", common.preset, common.overrides())
    settings = resolved.settings
    check_output_folder(common.output, common.overwrite)
    read_references(references)  # every reference decodes before the model loads
    with RichReporter(common.quiet) as reporter:
        reporter.loading(f"VAE of {settings.vae or settings.model}")
        vae = load_vae_for(settings)
        reporter.job_started(0, 1, "decoder fine-tune", settings.steps)
        began = time.perf_counter()
        result = run_finetune(vae, references, settings, common.output, common.overwrite, resolved, reporter.step)
        reporter.job_done("decoder fine-tune", common.output, time.perf_counter() - began)
    if not common.quiet:
        stderr.print(
            f"reconstruction L1 (mean |x − D(E(x))|, 0–1 scale): before {result.l1_before:.4f}, "
            f"after {result.l1_after:.4f}"
        )
