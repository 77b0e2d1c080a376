"""Reading images for the engine: any PIL format, EXIF orientation, RGB, resized, as tensors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from adcli.errors import InputError


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image as RGB with its EXIF orientation applied; any failure names the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"image {path} does not exist: check the path")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"image {path} is too large to read safely: scale it down first") from None
    except Image.UnidentifiedImageError:
        raise InputError(f"{path} is not an image that can be read (PNG, JPEG, WebP, …)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"image {path} is broken or truncated ({error}): re-export or replace it") from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def to_tensor(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """PIL RGB → (1, 3, H, W) in [-1, 1], resized to ``size`` = (width, height)."""
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_image_tensor(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    return to_tensor(open_rgb(path), size)


def to_pil(pixels: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] → PIL RGB."""
    array = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")
