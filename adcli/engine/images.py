"""Reading images for the engine, and the sizes they are worked at.

Every picture adcli reads goes through :func:`open_rgb`: a path, a PIL image or an (H, W, 3)
uint8 array becomes an upright 8-bit RGB PIL image, whatever a camera or editor wrote — 16-bit
and 32-bit samples are scaled, not clipped (a 16-bit PNG must not read as white), transparency
is composited on white, CMYK goes through its ICC profile when it has one, EXIF rotation is
applied. Sizes: outputs and references keep their aspect ratio at about a pixel budget unless
the user asks for an exact size (:func:`parse_size_spec`, :func:`fit_to_pixels`).

torch is imported only by the tensor conversions at the end: planning a run (which reads and
sizes images) and ``--dry-run`` start without the model libraries.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from PIL import Image, ImageOps

from adcli.errors import InputError

if TYPE_CHECKING:
    import torch

ImageSource = Union[str, Path, Image.Image, np.ndarray]
"""What the library accepts wherever it takes a picture."""

SIDE_MULTIPLE = 8  # the VAE downsamples by 8: every side of a worked image is a multiple of it
MAX_SIDE = 4096
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S")
_WITH_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


def _describe(source: ImageSource) -> str:
    """How an error names the picture: its path, or what it is."""
    if isinstance(source, (str, Path)):
        return f"image {source}"
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "")
        return f"image {name}" if name else "the PIL image given"
    return "the array given"


def _open_file(path: Path) -> Image.Image:
    """Decode the whole file (so that a truncated one fails here), upright by its EXIF orientation."""
    if not path.exists():
        raise InputError(f"image {path} does not exist: check the path")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                upright.format = image.format  # a copy forgets it; 16-bit grey PNGs open as mode I
                return upright
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"image {path} is too large to read safely: scale it down first") from None
    except Image.UnidentifiedImageError:
        raise InputError(f"{path} is not an image that can be read (PNG, JPEG, WebP, …)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InputError(
            f"image {path} cannot be read ({error}): it is broken or truncated, or in a pixel format Pillow "
            f"does not know; re-export it as PNG or JPEG"
        ) from None


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InputError(
            f"an image array must be (H, W, 3) uint8 in 0…255, got shape {tuple(array.shape)} of {array.dtype}"
        )
    mode = "L" if array.ndim == 2 else ("RGB" if array.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(array), mode)


def _deep_to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float single-channel image as 8-bit grey, scaled to its range.

    16-bit data (``I;16*``, and PNG's 16-bit grey, which Pillow opens as ``I``) spans 0…65535;
    floats in 0…1 are taken as 0…1; any other range is scaled so that its brightest value is white.
    """
    values = np.asarray(image, dtype=np.float64)
    if image.mode in _SIXTEEN_BIT or image.format == "PNG":
        top = 65535.0
    elif image.mode == "F" and values.size and np.nanmin(values) >= 0 and np.nanmax(values) <= 1:
        top = 1.0
    else:
        finite = values[np.isfinite(values)]
        top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    scaled = np.nan_to_num(values / top * 255.0, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8), "L")


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """Through the image's own ICC profile when it has one (what a viewer shows), else Pillow's formula."""
    profile = image.info.get("icc_profile")
    if profile:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # noqa: BLE001 — a broken or unusable profile: the plain conversion is still the picture
            pass
    return image.convert("RGB")


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    mode = image.mode
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        return _deep_to_8bit(image).convert("RGB")
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode in _WITH_ALPHA or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError):
        raise InputError(f"{name} has pixel mode {mode}, which adcli cannot read: save it as 8-bit RGB (PNG or JPEG)") from None


def open_rgb(source: ImageSource) -> Image.Image:
    """A path, PIL image or (H, W, 3) uint8 array as the upright 8-bit RGB picture it shows.

    Any failure is a one-line :class:`InputError` naming the file.
    """
    name = _describe(source)
    if isinstance(source, (str, Path)):
        image = _open_file(Path(source))
    elif isinstance(source, Image.Image):
        try:
            source.load()
            image = ImageOps.exif_transpose(source)
            image.format = source.format
        except (OSError, SyntaxError, ValueError) as error:
            raise InputError(f"{name} cannot be read ({error})") from None
    elif isinstance(source, np.ndarray):
        image = _from_array(source)
    else:
        raise InputError(f"an image must be a path, a PIL image or an (H, W, 3) uint8 array, not {type(source).__name__}")
    return _to_rgb(image, name)


def check_image(path: str | Path) -> tuple[int, int]:
    """Decode ``path`` fully, before any model loads; its upright (width, height).

    A missing, broken, truncated or unreadable file raises a one-line InputError naming it.
    """
    return open_rgb(path).size


# -- sizes ---------------------------------------------------------------------------------------

def _round_side(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def fit_to_pixels(
    width: int, height: int, pixels: int, multiple: int = SIDE_MULTIPLE, max_side: int = MAX_SIDE
) -> tuple[int, int]:
    """(w, h) with the aspect ratio of ``width``×``height`` and about ``pixels`` in all, sides multiples
    of ``multiple`` (and none longer than ``max_side``: a very thin strip gets fewer pixels).

    E.g. a 4000×3000 photo at SD1.5's 512² budget → (592, 440).
    """
    if width <= 0 or height <= 0 or pixels <= 0:
        raise ValueError(f"fit_to_pixels needs positive sizes, got {width}x{height} at {pixels} pixels")
    scale = math.sqrt(pixels / (width * height))
    if max(width, height) * scale > max_side:
        return fit_longer_side(width, height, max_side, multiple)
    return _round_side(width * scale, multiple), _round_side(height * scale, multiple)


def fit_longer_side(width: int, height: int, longer: int, multiple: int = SIDE_MULTIPLE) -> tuple[int, int]:
    """(w, h) with the aspect ratio of ``width``×``height`` and the longer side ``longer``, multiples of ``multiple``."""
    if width <= 0 or height <= 0 or longer <= 0:
        raise ValueError(f"fit_longer_side needs positive sizes, got {width}x{height} to {longer}")
    scale = longer / max(width, height)
    return _round_side(width * scale, multiple), _round_side(height * scale, multiple)


# -- tensors -------------------------------------------------------------------------------------

def to_tensor(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """PIL RGB → (1, 3, H, W) in [-1, 1], resized to ``size`` = (width, height)."""
    if image.size != tuple(size):
        image = image.resize(tuple(size), Image.Resampling.LANCZOS)
    import torch

    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_image_tensor(source: ImageSource, size: tuple[int, int]) -> torch.Tensor:
    """Any picture as (1, 3, H, W) in [-1, 1] at exactly ``size`` = (width, height)."""
    return to_tensor(open_rgb(source), size)


def to_pil(pixels: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] → PIL RGB."""
    import torch

    array = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")
