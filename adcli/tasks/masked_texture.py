"""Masked (controllable) texture synthesis (paper Eqs. 11–12, Sec. 4.1 and App. B).

The source label map labels the reference texture; the target label map lays out the output.
The output takes the target map's shape and the reference keeps its own, each with the longer
side of ``size`` (``auto``: the model's native side). The init image (each target region filled
with random same-labelled source pixels) is both the starting latent and the content reference
(λ = ``mask_content_weight``). Its inputs are read and checked in tasks/masked_inputs.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.images import to_tensor
from adcli.engine.masks import MaskedAttention, fill_from_source
from adcli.engine.progress import ProgressCallback
from adcli.tasks.common import decode_all, tiled
from adcli.tasks.masked_inputs import prepare
from adcli.tasks.model import Model


def run_masked_texture(
    model: Model, items: Sequence[dict[str, Any]], settings: Any, seeds: Sequence[int],
    callback: ProgressCallback | None = None,
) -> list[Image.Image]:
    backend = model.backend
    images = []
    for item, seed in zip(items, seeds):
        masked = prepare(item, settings)
        reference_pixels = to_tensor(masked.reference, masked.reference_size)  # (1, 3, H, W) in [-1, 1]
        init = fill_from_source(reference_pixels, masked.maps, masked.output_size, torch.Generator("cpu").manual_seed(seed))
        init_latents = backend.encode_images(init)
        guide = Guide(
            reference=backend.encode_images(reference_pixels), content=init_latents,
            content_weight=settings.mask_content_weight, mask_fn=MaskedAttention(masked.maps, backend.device),
        )
        with tiled(backend, settings.tile):
            latents = distill_by_optimization(
                backend, init_latents, guide, layers=settings.layers, iterations=settings.iterations, lr=settings.lr,
                callback=callback,
            )
            images.extend(decode_all(backend, latents))
    return images
