"""Label maps for masked texture synthesis, read and checked without the model libraries.

A label map is an image with one flat colour per region; the source map labels the reference
texture and the target map says where each region goes in the output. Reading them is part of
planning a run (the colours and sizes go into each job's metadata), so this module uses numpy
only; engine/masks.py turns the labels into attention masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adcli.engine.images import open_rgb
from adcli.errors import InputError

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

    source: np.ndarray  # (Hs, Ws) int64
    target: np.ndarray  # (Ht, Wt) int64
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
        return LabelMaps(source_labels.astype(np.int64), target_labels.astype(np.int64), colours)

    @staticmethod
    def read(source: Path, target: Path) -> LabelMaps:
        return LabelMaps.from_colours(read_colours(source), read_colours(target), str(source), str(target))


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two (width, height) sizes have the same shape, within ``ASPECT_TOLERANCE``."""
    return abs((a[0] / a[1]) / (b[0] / b[1]) - 1) <= ASPECT_TOLERANCE
