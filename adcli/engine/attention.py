"""Attention features as every architecture records them, and how layers are picked.

An architecture's capture processors (``engine/archs/``) compute attention exactly like the
model's default processors and record, for the layers they were asked for, the per-head queries,
keys, values and attention output as :class:`LayerFeatures` into a :class:`FeatureStore` owned by
the current run; the last wanted layer raises :class:`FeaturesComplete` to end a pass early.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from adcli.errors import InputError, setting


@dataclass
class LayerFeatures:
    """One attention layer's tensors, each ``(batch, heads, tokens, head_dim)``.

    ``out`` is ``softmax(q kᵀ/√d) v`` before the output projection. ``image`` is the slice of the
    token axis that holds image tokens (a joint transformer sequence also holds text tokens; in a
    UNet every token is an image token) and ``grid`` those tokens' (height, width), used to
    downsample label maps. ``text`` is the slice of text tokens (empty in a UNet).
    """

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    out: torch.Tensor
    grid: tuple[int, int]
    # slices are unhashable before Python 3.12, which dataclasses take for mutable: hence the factories
    text: slice = field(default_factory=lambda: slice(0, 0))
    image: slice = field(default_factory=lambda: slice(0, None))

    @property
    def image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def all_image(self) -> bool:
        """Every token is an image token (a UNet layer): masks and content losses need no slicing."""
        return self.image == slice(0, None)


class FeaturesComplete(Exception):
    """Raised by the last wanted layer to stop a forward pass whose remainder is not needed."""


@dataclass
class FeatureStore:
    """Where one denoiser pass leaves its captured layers, keyed by layer position.

    ``grid_hint`` is the (height, width) of the latent (or token grid) entering the denoiser, set
    by the capture's pre-hook, from which each layer's token grid follows (non-square grids included).
    """

    layers: dict[int, LayerFeatures] = field(default_factory=dict)
    stop_after: int | None = None
    grid_hint: tuple[int, int] | None = None

    def clear(self) -> None:
        self.layers.clear()


def select_layers(count: int, indices: Sequence[int]) -> list[int]:
    """Resolve layer indices (negative counts from the end) among ``count`` layers to sorted
    positions, failing loudly."""
    resolved = []
    for index in indices:
        position = index + count if index < 0 else index
        if not 0 <= position < count:
            raise InputError(
                f"layer {index} does not exist: this model has {count} self-attention layers "
                f"(use 0..{count - 1}, or -1 for the last)"
            )
        resolved.append(position)
    if not resolved:
        raise InputError(f"no attention layers selected: give at least one in {setting('layers')}")
    return sorted(set(resolved))
