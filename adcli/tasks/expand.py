"""Texture expansion (paper App. B): a reference texture grown to any size with MultiDiffusion."""

from __future__ import annotations

from pathlib import Path

import torch

from adcli.engine.distill import Guide
from adcli.engine.models import Backend
from adcli.engine.multidiffusion import expand_by_sampling
from adcli.engine.tiling import seamless
from adcli.presets import ResolvedSettings, parse_size
from adcli.tasks.common import LatentCache, decode_to_image, require_files
from adcli.tasks.jobs import Job, Reporter


def expand_jobs(resolved: ResolvedSettings, references: list[Path], reporter: Reporter, num_images: int = 1) -> list[Job]:
    """``num_images`` expansions of the reference(s), each from its own seed.

    The references are resized to one window (64 latents = 512 px on SD1.5), the size the UNet
    was trained on, whatever the output size.
    """
    settings = resolved.settings
    size = parse_size(settings.size, settings.max_side)
    require_files(references, "reference image")
    cache = LatentCache()
    stem = "_".join(r.stem for r in references)
    wrap_x, wrap_y = "x" in settings.tile, "y" in settings.tile

    def job_for(index: int) -> Job:
        def make(backend: Backend, seed: int):
            side = settings.window * backend.vae_scale_factor
            guide = Guide(reference=cache.stack(backend, references, (side, side)))
            latents = expand_by_sampling(
                backend, guide, size=size, generator=torch.Generator("cpu").manual_seed(seed),
                layers=settings.layers, steps=settings.steps, iterations=settings.ad_iterations, lr=settings.lr,
                adain=settings.adain, window=settings.window, stride=settings.stride,
                window_batch=settings.window_batch, wrap_x=wrap_x, wrap_y=wrap_y, on_step=reporter.step,
            )
            # the windows wrapped; the decoder must too, or the VAE would paint a seam at the edges
            with seamless([backend.vae.decoder, backend.vae.post_quant_conv], settings.tile):
                return decode_to_image(backend, latents)

        name = f"{stem}_{size[0]}x{size[1]}" + (f"_{index}" if num_images > 1 else "")
        inputs = {"reference": [str(r) for r in references], "image_index": index}
        return Job(name=name, inputs=inputs, make=make, key=f"{stem}#{index}", steps=settings.steps)

    return [job_for(index) for index in range(num_images)]
