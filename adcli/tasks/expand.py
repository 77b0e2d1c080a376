"""Texture expansion (paper App. B): a reference texture grown to any size with MultiDiffusion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from adcli.engine.config import ExpansionConfig
from adcli.engine.features import Guide
from adcli.engine.models import Backend
from adcli.engine.multidiffusion import expand_by_sampling
from adcli.engine.tiling import seamless
from adcli.presets import ResolvedSettings, parse_size
from adcli.tasks.common import decode_to_image, require_files
from adcli.tasks.jobs import Job, JobContext, Reporter, progress_callback
from adcli.tasks.sources import reference_sets


def expand_job(resolved: ResolvedSettings, inputs: dict[str, Any], context: JobContext, numbered: bool | None = None) -> Job:
    """Expansion number ``image_index`` of a reference set, from its own seed.

    The references are resized to one window (64 latents = 512 px on SD1.5), the size the UNet
    was trained on, whatever the output size. Each job runs alone (no ``group``): its windows
    already fill the UNet batch (``window_batch``).
    """
    settings = resolved.settings
    size = parse_size(settings.size, settings.max_side)
    references = require_files([Path(r) for r in inputs["reference"]], "reference image")
    index = int(inputs.get("image_index") or 0)
    wrap_x, wrap_y = "x" in settings.tile, "y" in settings.tile

    def make(backend: Backend, seed: int):
        side = settings.window * backend.vae_scale_factor
        guide = Guide(reference=context.latents.stack(backend, references, (side, side)))
        config = ExpansionConfig(
            settings.steps, settings.ad_iterations, settings.lr, settings.layers, settings.adain,
            window=settings.window, stride=settings.stride, window_batch=settings.window_batch, wrap_x=wrap_x, wrap_y=wrap_y,
        )
        latents = expand_by_sampling(
            backend, guide, config, size=size, generator=torch.Generator("cpu").manual_seed(seed),
            callback=progress_callback(context.reporter),
        )
        # the windows wrapped; the decoder must too, or the VAE would paint a seam at the edges
        with seamless([backend.vae.decoder, backend.vae.post_quant_conv], settings.tile):
            return decode_to_image(backend, latents)

    stem = "_".join(r.stem for r in references)
    numbered = index > 0 if numbered is None else numbered
    return Job(
        name=f"{stem}_{size[0]}x{size[1]}" + (f"_{index}" if numbered else ""),
        inputs={"reference": [str(r) for r in references], "image_index": index},
        make=make,
        key=f"{stem}#{index}",
        steps=settings.steps,
        fields={"reference": stem, "image_index": index},
        resolved=resolved,
        files=references,
    )


def expand_jobs(resolved: ResolvedSettings, references: list[Path] | None, reporter: Reporter, num_images: int = 1) -> list[Job]:
    """``num_images`` expansions per reference set (single files are blended together; a folder or
    glob gives one set per image), each from its own seed."""
    context = JobContext(reporter)
    return [
        expand_job(resolved, {"reference": refs, "image_index": index}, context, numbered=num_images > 1)
        for refs in reference_sets(references, "reference image", reporter.info)
        for index in range(num_images)
    ]
