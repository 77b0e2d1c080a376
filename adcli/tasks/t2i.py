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
from adcli.tasks.common import decode_all, native_size, resolve_size, tiled
from adcli.tasks.model import Model
from adcli.tasks.texture import sampling_config


def run_t2i(
    model: Model, items: Sequence[dict[str, Any]], settings: Any, seeds: Sequence[int],
    callback: ProgressCallback | None = None,
) -> list[Image.Image]:
    """One image per item (prompt, style set, optional layout and control image), each from its seed."""
    backend, cache = model.backend, model.cache
    images = []
    for item, seed in zip(items, seeds):
        layout, control = item.get("layout"), item.get("control")
        size = resolve_size(settings.size_spec(), native_size(backend), None if layout is None else cache.image(layout).size)
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
        with tiled(backend, settings.tile):
            latents = distill_by_sampling(
                backend, denoise, guide, sampling_config(settings, settings.strength if layout is not None else 1.0),
                size=size, generator=torch.Generator("cpu").manual_seed(seed), init=guide.content, callback=callback,
            )
            images.extend(decode_all(backend, latents))
    return images
