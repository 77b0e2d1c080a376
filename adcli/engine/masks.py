"""Label maps for masked texture synthesis (paper Eqs. 11–12).

A label map is an image with one flat colour per region; the source map labels the reference
texture and the target map says where each region goes in the output. Each self-attention
layer sees both maps downsampled (nearest) to its own token grid, and a target query may
attend only to reference keys of the same label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from adcli.engine.label_maps import Grid, LabelMaps, read_colours, same_aspect
from adcli.errors import InputError, setting

__all__ = ["LabelMaps", "MaskedAttention", "downsample_labels", "fill_from_source", "label_mask", "read_colours", "same_aspect"]


def downsample_labels(labels: torch.Tensor | np.ndarray, grid: Grid) -> torch.Tensor:
    """(H, W) labels → (h, w) labels by nearest sampling at pixel centres; never assumes a square."""
    labels = torch.as_tensor(labels)
    if tuple(labels.shape) == tuple(grid):
        return labels
    resized = F.interpolate(labels[None, None].float(), size=grid, mode="nearest-exact")
    return resized[0, 0].round().long()


def label_mask(target_labels: torch.Tensor, source_labels: torch.Tensor) -> torch.Tensor:
    """Boolean (N, M): True where target token j and reference token i carry the same label.

    Both inputs are already at their layers' grids; tokens are flattened row by row, the order
    the UNet's attention uses.
    """
    return target_labels.reshape(-1, 1) == source_labels.reshape(1, -1)


@dataclass
class MaskedAttention:
    """``Guide.mask_fn`` for one reference: the (N, M) same-label mask per (target, reference) grid pair."""

    maps: LabelMaps
    device: torch.device = torch.device("cpu")
    _cache: dict[tuple[Grid, Grid], torch.Tensor] = field(default_factory=dict, repr=False)

    def __call__(self, target_grid: Grid, ref_grid: Grid) -> torch.Tensor:
        key = (tuple(target_grid), tuple(ref_grid))
        if key not in self._cache:
            target = downsample_labels(self.maps.target, key[0])
            source = downsample_labels(self.maps.source, key[1])
            self._cache[key] = label_mask(target, source).to(self.device)
        return self._cache[key]


def fill_from_source(
    source_pixels: torch.Tensor, maps: LabelMaps, size: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """The init image: each target pixel gets a random pixel of the same label from the source.

    source_pixels: (1, 3, Hs, Ws), the reference as the engine sees it; size: the output's
    (width, height). Both maps are resized (nearest) to their image first. Returns (1, 3, H, W).
    """
    height_s, width_s = source_pixels.shape[-2:]
    width, height = size
    source = downsample_labels(maps.source, (height_s, width_s)).reshape(-1)
    target = downsample_labels(maps.target, (height, width)).reshape(-1)
    colours = source_pixels[0].reshape(3, -1)  # (3, Hs·Ws)
    filled = torch.empty(3, height * width, dtype=source_pixels.dtype)
    for label in torch.unique(target).tolist():
        where = torch.nonzero(target == label).squeeze(1)
        pool = torch.nonzero(source == label).squeeze(1)
        if len(pool) == 0:
            raise InputError(
                f"label {maps.colours[label]} covers too little of the source mask to survive resizing it to "
                f"{width_s}x{height_s}: enlarge that region or use a larger {setting('size')}"
            )
        picks = pool[torch.randint(len(pool), (len(where),), generator=generator)]
        filled[:, where] = colours[:, picks]
    return filled.reshape(1, 3, height, width)
