"""Style-specific text-to-image (paper Sec. 3.4, Alg. 2): a prompt in the style of a reference set.

The model loads once and each style, layout and control image is read and encoded once per
run (the model's image cache), however many prompts and images there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from adcli.engine.controlnet import Control
from adcli.engine.features import Guide
from adcli.engine.images import to_tensor
from adcli.engine.progress import ProgressCallback
from adcli.engine.sampler import distill_by_sampling, negative_conditioning, text_denoiser
from adcli.errors import InputError, setting
from adcli.tasks.common import decode_all, model_size, tiled
from adcli.tasks.model import Model
from adcli.tasks.texture import sampling_config


def start_latents(backend: Any, latents: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A caller's start latents, as the model family's diffusers pipeline takes them (FLUX: packed
    (1, h/2·w/2, 64); the others (1, C, h, w)), in the engine's layout (1, C, h, w); a tensor of
    another shape is a one-line error naming the one expected."""
    factor = backend.vae_scale_factor
    latent_hw = (size[1] // factor, size[0] // factor)
    expected = (1, backend.arch.latent_channels, *latent_hw)
    try:
        unpacked = backend.arch.from_pipeline_latents(torch.as_tensor(latents), latent_hw)
    except (RuntimeError, ValueError):  # a tensor that does not unpack to the grid
        unpacked = None
    if unpacked is None or tuple(unpacked.shape) != expected:
        raise InputError(
            f"latents of shape {tuple(torch.as_tensor(latents).shape)} do not fit a {size[0]}x{size[1]} image on "
            f"{backend.arch.title}: give what {backend.arch.pipeline_class} takes as latents= for one image"
        )
    return unpacked.float()


def run_t2i(
    model: Model, items: Sequence[dict[str, Any]], settings: Any, seeds: Sequence[int],
    callback: ProgressCallback | None = None, latents: Sequence[torch.Tensor | None] | None = None,
) -> list[Image.Image]:
    """One image per item (prompt, style set, optional layout and control image), each from its seed;
    ``latents`` (one per item, or None) replace an item's seeded start noise (the API's ``latents=``)."""
    backend, cache = model.backend, model.cache
    images = []
    starts = list(latents) if latents is not None else [None] * len(items)
    for item, seed, start in zip(items, seeds, starts):
        layout, control = item.get("layout"), item.get("control")
        size = model_size(backend, settings.size_spec(), None if layout is None else cache.image(layout).size)
        styles = list(item["style"])
        guide = Guide(
            reference=cache.references(backend, styles, size),
            content=None if layout is None else cache.latents(backend, layout, size),
            content_weight=settings.content_weight if layout is not None else 0.0,
        )
        conditioning = None
        if control is not None:
            if backend.controlnet is None:
                raise InputError(f"--control needs a ControlNet: load the model with one ({setting('controlnet')})")
            pixels = (to_tensor(cache.image(control), size) + 1) / 2  # (1, 3, H, W) in [0, 1], resized to the output
            conditioning = Control(backend.controlnet, pixels, settings.control_scale)
        denoise = text_denoiser(
            backend, backend.encode_prompts([str(item["prompt"])]),
            negative_conditioning(backend, settings.negative_prompt), settings.guidance, conditioning,
        )
        if conditioning is not None:
            backend.arch.check_tiling_control(settings.tile, True)
        with tiled(backend, settings.tile):
            result = distill_by_sampling(
                backend, denoise, guide, sampling_config(settings, settings.strength if layout is not None else 1.0),
                size=size, generator=torch.Generator("cpu").manual_seed(seed), init=guide.content, callback=callback,
                start=None if start is None else start_latents(backend, start, size),
            )
            images.extend(decode_all(backend, result))
    return images
