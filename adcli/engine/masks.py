"""Label maps for masked texture synthesis (paper Eqs. 11–12).

A label map is an image with one flat colour per region; the source map labels the reference
texture and the target map says where each region goes in the output. Each self-attention
layer sees both maps downsampled (nearest) to its own token grid, and a target query may
attend only to reference keys of the same label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adcli.engine.images import open_rgb
from adcli.errors import InputError, setting

# More colours than this means smoothed edges or JPEG noise, not a hand-made label map.
MAX_LABELS = 64
# Label maps and the images they describe may differ in size, but not in shape.
ASPECT_TOLERANCE = 0.02

Grid = tuple[int, int]


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def read_colours(path: Path) -> np.ndarray:
    """A label map as (H, W, 3) uint8, checked to be made of flat colours."""
    pixels = np.asarray(open_rgb(path), dtype=np.uint8)
    count = len(np.unique(pixels.reshape(-1, 3), axis=0))
    if count > MAX_LABELS:
        raise InputError(
            f"label map {path} has {count} colours (at most {MAX_LABELS}): it looks anti-aliased or "
            f"JPEG-compressed; save it as PNG with one flat colour per region and no smoothing"
        )
    return pixels


def _codes(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 → (H, W) int64 colour codes 0xRRGGBB."""
    rgb = pixels.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _rgb(code: int) -> tuple[int, int, int]:
    return (code >> 16) & 255, (code >> 8) & 255, code & 255


@dataclass(frozen=True)
class LabelMaps:
    """Source and target maps as integer labels (index into ``colours``), full resolution."""

    source: torch.Tensor  # (Hs, Ws) int64
    target: torch.Tensor  # (Ht, Wt) int64
    colours: tuple[str, ...]  # label → "#rrggbb"

    @staticmethod
    def from_colours(source: np.ndarray, target: np.ndarray, source_name: str, target_name: str) -> LabelMaps:
        """Number the source's colours; every target colour must be one of them."""
        source_codes, target_codes = _codes(source), _codes(target)
        palette = np.unique(source_codes)
        missing = sorted(set(np.unique(target_codes).tolist()) - set(palette.tolist()))
        if missing:
            names = ", ".join(hex_colour(_rgb(c)) for c in missing)
            raise InputError(
                f"target mask {target_name} uses colour(s) {names}, which source mask {source_name} does not "
                f"have: every target region needs a region of the same colour in the source"
            )
        source_labels = np.searchsorted(palette, source_codes)
        target_labels = np.searchsorted(palette, target_codes)
        colours = tuple(hex_colour(_rgb(int(c))) for c in palette)
        return LabelMaps(torch.from_numpy(source_labels), torch.from_numpy(target_labels), colours)

    @staticmethod
    def read(source: Path, target: Path) -> LabelMaps:
        return LabelMaps.from_colours(read_colours(source), read_colours(target), str(source), str(target))


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two (width, height) sizes have the same shape, within ``ASPECT_TOLERANCE``."""
    return abs((a[0] / a[1]) / (b[0] / b[1]) - 1) <= ASPECT_TOLERANCE


def downsample_labels(labels: torch.Tensor, grid: Grid) -> torch.Tensor:
    """(H, W) labels → (h, w) labels by nearest sampling at pixel centres; never assumes a square."""
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
