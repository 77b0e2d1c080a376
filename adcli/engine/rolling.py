"""Seamless tiling for denoisers without padded convolutions (FLUX.1, SD3.5): roll the latent.

A UNet tiles by padding its convolutions circularly (:mod:`adcli.engine.tiling`); a transformer
has no padding to change, and its attention sees the picture's edges as edges. So each denoiser
pass sees the latent *rolled* (a circular shift, in whole tokens) by an offset that changes from
pass to pass, and its result is rolled back: the wrap-around seam sits at another place in every
pass, inside the picture where the model makes neighbours agree, and no place stays an edge for
long (the idea of SpotDiffusion's shifted windows, with one window that covers the picture). The
offsets along each axis follow an irrational-step (Kronecker) sequence — the golden ratio across,
√2 down — so that a few passes already visit every part of the picture.

The AD passes roll the same way, and their features are rolled back to the picture's own token
order (:func:`unroll_features`): masks and the content loss compare the tokens of one place.
MultiDiffusion wraps its windows instead (:mod:`adcli.engine.multidiffusion`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from adcli.engine.attention import LayerFeatures

# Kronecker sequence steps: frac(k·α) with α = √2 − 1 down and 1/φ across (φ the golden ratio) visits
# every one of n tokens within about n passes, and the two axes do not move in step.
_STEP_Y, _STEP_X = 0.41421356237309515, 0.6180339887498949


@dataclass(frozen=True)
class Rolling:
    """Per-pass circular offsets of a latent that wraps in y and/or x, in whole tokens of
    ``multiple`` latent pixels (the patch size: a roll is then an exact permutation of tokens)."""

    wrap_y: bool
    wrap_x: bool
    multiple: int = 2

    def shift(self, index: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """(dy, dx) in latent pixels for pass ``index`` (0, 1, …) of a latent of ``latent_hw``."""
        tokens_h, tokens_w = (side // self.multiple for side in latent_hw)
        dy = round(((index + 1) * _STEP_Y) % 1 * tokens_h) % tokens_h if self.wrap_y else 0
        dx = round(((index + 1) * _STEP_X) % 1 * tokens_w) % tokens_w if self.wrap_x else 0
        return dy * self.multiple, dx * self.multiple

    def around(self, denoise: Callable, index_of: Callable) -> Callable:
        """``denoise(z, point)`` on ``z`` rolled by the offset of ``index_of(point)``, rolled back."""

        def rolled(latents: torch.Tensor, point) -> torch.Tensor:
            shift = self.shift(index_of(point), tuple(latents.shape[-2:]))
            return unroll(denoise(roll(latents, shift), point), shift)

        return rolled


def roll(latents: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) circularly shifted by (dy, dx): pixel (y, x) moves to (y + dy, x + dx)."""
    return latents if shift == (0, 0) else torch.roll(latents, shifts=shift, dims=(-2, -1))


def unroll(latents: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`roll`."""
    return roll(latents, (-shift[0], -shift[1]))


def needs_rolling(backend, wrap_y: bool, wrap_x: bool) -> Rolling | None:
    """The rolling that tiles ``backend``'s model in the wrapped axes, or None: no axis wraps, or its
    denoiser wraps by itself (circular padding)."""
    if not (wrap_y or wrap_x) or backend.arch.circular_padding:
        return None
    return Rolling(wrap_y, wrap_x, backend.arch.patch_size)


def _unroll_rows(x: torch.Tensor, layer: LayerFeatures, tokens: tuple[int, int]) -> torch.Tensor:
    """(B, H, N, D) with the image rows (the layer's ``image`` slice, on its grid) rolled back by ``tokens``."""
    start, stop, _ = layer.image.indices(x.shape[2])
    height, width = layer.grid
    image = x[:, :, start:stop].unflatten(2, (height, width))  # (B, H, h, w, D)
    image = torch.roll(image, shifts=(-tokens[0], -tokens[1]), dims=(2, 3)).flatten(2, 3)
    return torch.cat([x[:, :, :start], image, x[:, :, stop:]], dim=2)


def unroll_features(features: dict[int, LayerFeatures], shift: tuple[int, int], latent_hw: tuple[int, int]) -> dict:
    """Features of a pass on a latent rolled by ``shift`` (latent pixels), with every layer's image
    tokens put back in the unrolled picture's order (text tokens stay)."""
    if shift == (0, 0):
        return features
    unrolled = {}
    for position, layer in features.items():
        tokens = (shift[0] * layer.grid[0] // latent_hw[0], shift[1] * layer.grid[1] // latent_hw[1])
        q, k, v, out = (_unroll_rows(x, layer, tokens) for x in (layer.q, layer.k, layer.v, layer.out))
        unrolled[position] = replace(layer, q=q, k=k, v=v, out=out)
    return unrolled
