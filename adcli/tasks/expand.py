"""Texture expansion (paper App. B): a reference texture grown to any size with MultiDiffusion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from adcli.engine.config import ExpansionConfig
from adcli.engine.features import Guide
from adcli.engine.multidiffusion import expand_by_sampling
from adcli.engine.progress import ProgressCallback
from adcli.tasks.common import decode_all, tiled
from adcli.tasks.model import Model


def run_expand(
    model: Model, items: Sequence[dict[str, Any]], settings: Any, seeds: Sequence[int],
    callback: ProgressCallback | None = None,
) -> list[Image.Image]:
    """One expansion per item, from its own seed. The references keep their aspect ratio at one
    window's pixel count (64 latents = 512 px on SD1.5), the size the denoiser was trained on."""
    backend, cache = model.backend, model.cache
    size = settings.size_spec().exact
    side = settings.window * backend.vae_scale_factor
    images = []
    for item, seed in zip(items, seeds):
        references = list(item["reference"])
        guide = Guide(reference=cache.references(backend, references, (side, side)))
        config = ExpansionConfig(
            settings.steps, settings.ad_iterations, settings.lr, settings.layers, settings.adain,
            window=settings.window, stride=settings.stride, window_batch=settings.window_batch,
            wrap_x="x" in settings.tile, wrap_y="y" in settings.tile,
        )
        latents = expand_by_sampling(
            backend, guide, config, size=size, generator=torch.Generator("cpu").manual_seed(seed), callback=callback
        )
        # the windows wrapped; the decoder must too, or the VAE would paint a seam at the edges
        with tiled(backend, settings.tile, denoiser=False):
            images.extend(decode_all(backend, latents))
    return images
