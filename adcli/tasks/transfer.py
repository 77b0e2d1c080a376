"""Style and appearance transfer (paper Sec. 3.3, Alg. 1): a content image's latent distils its
reference set (several references: their keys and values joined on the token axis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.progress import ProgressCallback
from adcli.tasks.common import decode_all, native_size, resolve_size
from adcli.tasks.inputs import Inputs, StyleTransferInputs
from adcli.tasks.model import Model


def run_transfer(
    model: Model, items: Sequence[dict[str, Any]], settings: Any, seeds: Sequence[int],
    callback: ProgressCallback | None = None, inputs: type[Inputs] = StyleTransferInputs,
) -> list[Image.Image]:
    """One picture per item; items with the same references are optimized together, one UNet
    batch per output size, each exactly as it would be alone. ``inputs``: the command's inputs
    class, which names the content image and the reference set."""
    content_role, reference_role = inputs.role_of_kind("image"), inputs.role_of_kind("images")
    backend, cache = model.backend, model.cache
    native = native_size(backend)
    spec = settings.size_spec()
    sizes = [resolve_size(spec, native, cache.image(item[content_role]).size) for item in items]
    images: list[Image.Image | None] = [None] * len(items)
    for size in dict.fromkeys(sizes):
        indices = [i for i, s in enumerate(sizes) if s == size]
        references = items[indices[0]][reference_role]
        contents = torch.cat([cache.latents(backend, items[i][content_role], size) for i in indices])  # (B, 4, h, w)
        guide = Guide(
            reference=cache.references(backend, references, size),
            content=contents,
            content_weight=settings.content_weight,
        )
        latents = distill_by_optimization(
            backend, contents, guide, layers=settings.layers, iterations=settings.iterations, lr=settings.lr,
            callback=callback,
        )
        for i, image in zip(indices, decode_all(backend, latents)):
            images[i] = image
    return images  # type: ignore[return-value]
