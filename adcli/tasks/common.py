"""Pieces the task functions share: sizes, the per-model image cache, decoding, tiling."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from PIL import Image

from adcli.engine.images import fit_longer_side, fit_to_pixels, open_rgb, to_pil, to_tensor
from adcli.engine.backend import Backend
from adcli.engine.tiling import seamless_model
from adcli.errors import InputError
from adcli.presets import SizeSpec
from adcli.tasks.inputs import ImageSource, source_key


def native_size(backend: Backend) -> tuple[int, int]:
    """The model's own output size, as its architecture knows it (512² SD1.5, 1024² SDXL)."""
    return backend.native_size()


def resolve_size(spec: SizeSpec, native: tuple[int, int], aspect_of: tuple[int, int] | None = None) -> tuple[int, int]:
    """(width, height) for ``spec``: exact as given; ``longer`` side N or ``auto`` (the native pixel
    count) keeping the aspect ratio of ``aspect_of`` (an input image's size; square without one)."""
    if spec.exact is not None:
        return spec.exact
    width, height = aspect_of or (1, 1)
    if spec.kind == "longer":
        return fit_longer_side(width, height, spec.width)
    return native if aspect_of is None else fit_to_pixels(width, height, native[0] * native[1])


def reference_size(image_size: tuple[int, int], output_size: tuple[int, int]) -> tuple[int, int]:
    """A reference of ``image_size`` resized to about the pixels of ``output_size``, its own aspect ratio."""
    return fit_to_pixels(*image_size, output_size[0] * output_size[1])


class ImageCache:
    """Decoded images and encoded latents of one loaded model, so that a reference shared by
    many jobs is read and encoded once. Bounded: a batch over thousands of contents stays small."""

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self._latents: OrderedDict[tuple[str, tuple[int, int]], torch.Tensor] = OrderedDict()

    def _remember(self, store: OrderedDict, key: Any, value: Any) -> Any:
        store[key] = value
        if len(store) > self.capacity:
            store.popitem(last=False)
        return value

    def image(self, source: ImageSource) -> Image.Image:
        key = source_key(source)
        if key in self._images:
            self._images.move_to_end(key)
            return self._images[key]
        return self._remember(self._images, key, open_rgb(source))

    def latents(self, backend: Backend, source: ImageSource, size: tuple[int, int]) -> torch.Tensor:
        """(1, C, h, w) latent of ``source`` resized to ``size`` = (width, height)."""
        key = (source_key(source), size)
        if key in self._latents:
            self._latents.move_to_end(key)
            return self._latents[key]
        return self._remember(self._latents, key, backend.encode_images(to_tensor(self.image(source), size)))

    def references(self, backend: Backend, sources: Sequence[ImageSource], output_size: tuple[int, int]) -> torch.Tensor:
        """(R, C, h, w) latents of a reference set, all at the first reference's aspect ratio and the
        output's pixel count (several references share one tensor)."""
        size = reference_size(self.image(sources[0]).size, output_size)
        return torch.cat([self.latents(backend, source, size) for source in sources])


def decode_all(backend: Backend, latents: torch.Tensor) -> list[Image.Image]:
    """Each latent of the batch (B, C, h, w) as its own picture."""
    return [to_pil(backend.decode_latents(latents[i : i + 1])[0]) for i in range(latents.shape[0])]


@contextmanager
def tiled(backend: Backend, axes: str, denoiser: bool = True) -> Iterator[None]:
    """The denoiser's (with ``denoiser``) and the VAE decoder's convolutions wrap around in ``axes``
    (``none``: unchanged). The encoder is left alone: references are not periodic."""
    with seamless_model(backend, axes, denoiser):
        yield
