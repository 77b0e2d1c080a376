"""Texture synthesis (paper Sec. 3.2): a noise latent distils the reference(s), by optimization
(Alg. 1, ``mode: optimize``) or by AD-guided DDIM sampling with no prompt and no CFG (Alg. 2,
``mode: sample``); with label maps, masked synthesis (tasks/masked_texture.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.progress import ProgressCallback
from adcli.engine.config import SamplingConfig
from adcli.engine.sampler import distill_by_sampling, text_denoiser
from adcli.tasks.common import decode_all, native_size, resolve_size, tiled
from adcli.tasks.masked_texture import run_masked_texture
from adcli.tasks.model import Model


def sampling_config(settings: Any, strength: float = 1.0) -> SamplingConfig:
    return SamplingConfig(
        steps=settings.steps, ad_iterations=settings.ad_iterations, lr=settings.lr, adain=settings.adain,
        layers=tuple(settings.layers), strength=strength,
    )


def run_texture(
    model: Model, items: Sequence[dict[str, Any]], settings: Any, seeds: Sequence[int],
    callback: ProgressCallback | None = None,
) -> list[Image.Image]:
    """One texture per item, each from its own seed's noise; items share their reference set."""
    if items[0].get("source_mask") is not None or items[0].get("target_mask") is not None:
        return run_masked_texture(model, items, settings, seeds, callback)
    backend, cache = model.backend, model.cache
    size = resolve_size(settings.size_spec(), native_size(backend))
    references = items[0]["reference"]
    guide = Guide(reference=cache.references(backend, references, size))
    with tiled(backend, settings.tile):
        if settings.mode == "sample":
            denoise = text_denoiser(backend, backend.encode_prompts([""]))
            latents = torch.cat([
                distill_by_sampling(
                    backend, denoise, guide, sampling_config(settings), size=size,
                    generator=torch.Generator("cpu").manual_seed(seed), callback=callback,
                )
                for seed in seeds
            ])
        else:
            # (B, 4, h, w): one noise latent per item, each drawn from that item's seed
            noise = torch.cat([backend.latent_noise(size, torch.Generator("cpu").manual_seed(seed)) for seed in seeds])
            latents = distill_by_optimization(
                backend, noise, guide, layers=settings.layers, iterations=settings.iterations, lr=settings.lr,
                callback=callback,
            )
        return decode_all(backend, latents)
