"""`finetune-vae`: fine-tune a VAE decoder on reference images and save a diffusers VAE folder.

The folder loads back with ``--vae`` on every command. It is written next to its final place
and renamed in at the end, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL

import adcli
from adcli.engine.device import resolve_device
from adcli.engine.images import open_rgb, to_tensor
from adcli.engine.progress import ProgressCallback
from adcli.engine.models import load_model_vae
from adcli.engine.vae_finetune import FinetuneResult, finetune_decoder
from adcli.errors import OutputError
from adcli.outputs.atomic import current_umask
from adcli.presets import ResolvedSettings
from adcli.tasks.inputs import ImageSource, require_files, source_record

RECORD_NAME = "adcli-finetune.json"


def check_output_folder(output: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder without ``overwrite``, before any work is done."""
    if output.exists() and not output.is_dir():
        raise OutputError(f"-o {output} is a file: give a folder for the fine-tuned VAE")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise OutputError(f"{output} already exists and is not empty: choose another -o, or pass --overwrite to replace it")


def save_vae_folder(vae: AutoencoderKL, output: Path, overwrite: bool, record: dict) -> Path:
    """``save_pretrained`` (safetensors) plus ``record`` as JSON, into a temporary folder renamed into place."""
    check_output_folder(output, overwrite)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    except OSError as error:
        raise OutputError(f"cannot write to {output.parent}: {error.strerror or error}") from None
    retired = None
    try:
        vae.save_pretrained(staging, safe_serialization=True)
        (staging / RECORD_NAME).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
        mask = current_umask()
        os.chmod(staging, 0o777 & ~mask)
        for written in staging.iterdir():
            os.chmod(written, 0o666 & ~mask)
        if output.is_dir():
            retired = output.with_name(f".{output.name}.{os.getpid()}.old")
            os.rename(output, retired)
        os.rename(staging, output)
    except OSError as error:
        if retired is not None and not output.exists():
            os.rename(retired, output)
            retired = None
        raise OutputError(f"cannot write {output}: {error.strerror or error}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    return output


def read_references(references: Sequence[ImageSource]) -> list[torch.Tensor]:
    """Each reference at its own size, (1, 3, H, W) in [-1, 1]."""
    require_files(list(references), "reference image")
    return [to_tensor(image, image.size) for image in (open_rgb(source) for source in references)]


def finetune_vae(
    vae: AutoencoderKL, references: Sequence[ImageSource], settings: Any, output: Path, overwrite: bool,
    resolved: ResolvedSettings, callback: ProgressCallback | None = None,
) -> FinetuneResult:
    """Fine-tune ``vae``'s decoder on ``references`` (at their own size) and save it to ``output``.

    ``vae`` is changed: the API hands in a copy of the model's VAE, the CLI one loaded for this.
    """
    check_output_folder(output, overwrite)
    images = read_references(references)
    result = finetune_decoder(
        vae, images, steps=settings.steps, lr=settings.lr, crop_size=settings.crop_size,
        batch_size=settings.batch_size, seed=settings.seed, callback=callback,
    )
    record = {
        "adcli_version": adcli.__version__,
        **resolved.as_dict(),
        "inputs": {"reference": [source_record(r) for r in references]},
        "crop_size_used": result.crop_size,
        "reconstruction_l1_before": result.l1_before,
        "reconstruction_l1_after": result.l1_after,
    }
    save_vae_folder(vae, output, overwrite, record)
    return result


def load_vae_for(settings: Any) -> AutoencoderKL:
    """The VAE to fine-tune, alone (no UNet loaded), in fp32 on the settings' device, in eval mode."""
    return load_model_vae(settings.model, settings.vae, settings.model_config).to(resolve_device(settings.device)).eval()
