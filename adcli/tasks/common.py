"""Pieces the task modules share: encoded-image cache, noise, decoding to a picture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from adcli.engine.images import load_image_tensor, to_pil
from adcli.engine.models import Backend
from adcli.engine.tiling import seamless
from adcli.errors import InputError


class LatentCache:
    """Encode each (image, size) once per run, however many jobs use it."""

    def __init__(self) -> None:
        self._latents: dict[tuple[str, tuple[int, int]], torch.Tensor] = {}

    def get(self, backend: Backend, path: Path, size: tuple[int, int]) -> torch.Tensor:
        key = (str(path), size)
        if key not in self._latents:
            self._latents[key] = backend.encode_images(load_image_tensor(path, size))
        return self._latents[key]

    def stack(self, backend: Backend, paths: list[Path], size: tuple[int, int]) -> torch.Tensor:
        return torch.cat([self.get(backend, p, size) for p in paths])


def decode_to_image(backend: Backend, latents: torch.Tensor) -> Image.Image:
    return to_pil(backend.decode_latents(latents)[0])


def require_files(paths: list[Path], what: str) -> list[Path]:
    """Every path must be an existing file; a clear error names the first that is not."""
    if not paths:
        raise InputError(f"no {what} given")
    for path in paths:
        if not path.exists():
            raise InputError(f"{what} {path} does not exist: check the path")
        if path.is_dir():
            raise InputError(f"{what} {path} is a folder: give image files")
    return paths


def with_tiling(make: Callable[..., Any], axes: str) -> Callable[..., Any]:
    """A job's ``make`` run with the UNet's and VAE decoder's convolutions wrapping in ``axes``
    (``none``: unchanged). The encoder is left alone: references are not periodic."""
    if axes == "none":
        return make

    def tiled(backend: Backend, *args: Any) -> Any:
        with seamless([backend.unet, backend.vae.decoder, backend.vae.post_quant_conv], axes):
            return make(backend, *args)

    return tiled
