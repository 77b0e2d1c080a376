"""The ``low_vram`` setting: trade some speed for GPU memory, for 4–8 GB cards.

- gradient checkpointing in the denoiser: the target pass keeps few activations for the backward
  and recomputes the rest (about one more forward per iteration);
- text encoders and the VAE on the CPU except while they encode a prompt (once per prompt) or an
  image, or decode one, so the GPU holds only the denoiser while the denoiser works (on FLUX.1 the
  T5 alone is 9.5 GB in bf16, and far too slow to run on a CPU);
- tiled VAE encoding/decoding in 512-pixel tiles, so large outputs decode in bounded memory.

The optimization's results are the same as without it (to rounding). Images larger than 512
pixels are encoded and decoded in overlapping tiles whose seams are blended, which changes
pixels slightly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from adcli.engine.backend import Backend

TILE_PIXELS = 512


def enable_low_vram(backend: Backend) -> Callable[[], None]:
    """Move and configure ``backend`` for low GPU memory; returns the function that undoes it."""
    denoiser, vae = backend.denoiser, backend.vae
    encoder_devices = [next(e.parameters()).device for e in backend.text_encoders]
    vae_device = next(vae.parameters()).device
    tiling = (vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size)
    was_offloaded, was_checkpointing = backend.vae_offloaded, denoiser.is_gradient_checkpointing
    encoders_were_offloaded = backend.encoders_offloaded

    denoiser.enable_gradient_checkpointing()
    for encoder in backend.text_encoders:
        encoder.to("cpu")
    backend.encoders_offloaded = True
    vae.to("cpu")
    backend.vae_offloaded = True
    tile_vae(backend)
    if backend.device.type == "cuda":
        torch.cuda.empty_cache()

    def restore() -> None:
        if not was_checkpointing:
            denoiser.disable_gradient_checkpointing()
        for encoder, device in zip(backend.text_encoders, encoder_devices, strict=True):
            encoder.to(device)
        backend.encoders_offloaded = encoders_were_offloaded
        vae.to(vae_device)
        backend.vae_offloaded = was_offloaded
        vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size = tiling

    return restore


def tile_vae(backend: Backend) -> None:
    """The VAE encodes and decodes in tiles of at most ``TILE_PIXELS`` pixels (blended seams)."""
    vae = backend.vae
    vae.enable_tiling()
    vae.tile_sample_min_size = min(vae.tile_sample_min_size, TILE_PIXELS)
    vae.tile_latent_min_size = min(vae.tile_latent_min_size, TILE_PIXELS // backend.vae_scale_factor)


@contextmanager
def low_vram(backend: Backend) -> Iterator[Backend]:
    """:func:`enable_low_vram` for the duration of a block."""
    restore = enable_low_vram(backend)
    try:
        yield backend
    finally:
        restore()
