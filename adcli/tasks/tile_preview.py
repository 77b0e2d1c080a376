"""`tile-preview`: a picture repeated 2×2, and how visible its wrap-around seams are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from adcli.engine.images import open_rgb, to_pil
from adcli.engine.tiling import repeat_2x2, seam_ratio
from adcli.outputs.files import free_path, is_image_file_path, write_image


VISIBLE_SEAM = 1.5  # a seam ratio above this shows as a line in the 2×2 preview


def seam_verdict(seams: dict[str, float]) -> str:
    """What the seam ratios say, in words that follow the numbers (``{"x": 7.8, "y": 0.9}`` → a seam across x)."""
    numbers = ", ".join(f"{axis} {ratio:.2f}" for axis, ratio in seams.items())
    visible = [axis for axis, ratio in seams.items() if ratio > VISIBLE_SEAM]
    if not visible:
        return f"seam ratio {numbers}: no visible seam (about 1 or less is seamless)"
    return (
        f"seam ratio {numbers}: a visible seam in {' and '.join(visible)} (above {VISIBLE_SEAM}; "
        f"about 1 or less is seamless: make the texture with --tile {''.join(visible)})"
    )


def tile_preview(source: Path, output: Path | None, overwrite: bool) -> tuple[Path, dict[str, float]]:
    """Write ``source`` tiled 2×2 to ``output`` (default: ``<stem>_2x2.png`` beside it, never clobbering).

    Returns the path and the seam ratio per axis (see :func:`adcli.engine.tiling.seam_ratio`).
    """
    array = np.asarray(open_rgb(source), dtype=np.float32) / 255.0
    pixels = torch.from_numpy(array).permute(2, 0, 1)  # (3, H, W) in [0, 1]
    seams = {axis: round(seam_ratio(pixels, axis), 4) for axis in ("x", "y")}
    explicit = output is not None
    if output is None:
        output = free_path(source.parent, f"{source.stem}_2x2")
    elif not is_image_file_path(output):
        output = free_path(output, f"{source.stem}_2x2")
        explicit = False
    metadata = {"tile_preview_of": str(source), "seam_ratio": seams}
    write_image(to_pil(repeat_2x2(pixels)), output, metadata, overwrite=overwrite and explicit)
    return output, seams
