"""Improved VAE decoding (paper Sec. 3.5, Eq. 10): fine-tune the decoder on the reference image(s).

The SD VAE loses high-frequency detail. A few dozen Adam steps of L1 reconstruction
``‖D(E(x)) − x‖₁`` on random crops of the references teach the decoder their fine structure;
the encoder stays frozen (so latents made with the original VAE still mean the same thing).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL

from adcli.engine.optimize import REPORT_EVERY
from adcli.engine.progress import Progress, ProgressCallback
from adcli.errors import InputError, NumericalError, setting

# Reconstruction is measured on each image's centre, at most this many pixels a side (memory).
EVAL_SIDE = 512


@dataclass(frozen=True)
class FinetuneResult:
    """Mean |x − D(E(x))| on a 0–1 pixel scale, on the same views before and after fine-tuning."""

    l1_before: float
    l1_after: float
    steps: int
    crop_size: int


def _trim(image: torch.Tensor, height: int, width: int, top: int, left: int) -> torch.Tensor:
    return image[..., top : top + height, left : left + width]


def centre_view(image: torch.Tensor, side: int = EVAL_SIDE) -> torch.Tensor:
    """(1, 3, H, W) → its centre, at most ``side`` a side, both sides multiples of 8."""
    height, width = image.shape[-2:]
    h, w = (min(s, side) // 8 * 8 for s in (height, width))
    return _trim(image, h, w, (height - h) // 2, (width - w) // 2)


def crop_side(images: list[torch.Tensor], crop_size: int) -> int:
    """One square crop side that fits every image (so crops batch together), a multiple of 8."""
    smallest = min(min(image.shape[-2:]) for image in images)
    side = min(crop_size, smallest) // 8 * 8
    if side < 8:
        raise InputError(f"reference images must be at least 8x8 pixels; the smallest is {smallest} pixels a side")
    return side


def random_crops(images: list[torch.Tensor], side: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` random square crops of random images, each flipped left-right at random: (B, 3, side, side)."""
    crops = []
    for _ in range(batch):
        image = images[int(torch.randint(len(images), (1,), generator=generator))]
        height, width = image.shape[-2:]
        top = int(torch.randint(height - side + 1, (1,), generator=generator))
        left = int(torch.randint(width - side + 1, (1,), generator=generator))
        crop = _trim(image, side, side, top, left)
        if bool(torch.randint(2, (1,), generator=generator)):
            crop = crop.flip(-1)
        crops.append(crop)
    return torch.cat(crops)


@torch.no_grad()
def reconstruction_l1(vae: AutoencoderKL, images: list[torch.Tensor]) -> float:
    """Mean |x − D(E(x))| over the images' centre views, on a 0–1 pixel scale."""
    device = next(vae.parameters()).device
    errors = []
    for image in images:
        view = centre_view(image).to(device, torch.float32)
        decoded = vae.decode(vae.encode(view).latent_dist.mean).sample.clamp(-1, 1)
        errors.append(float((decoded - view).abs().mean()) / 2)
    return sum(errors) / len(errors)


@contextmanager
def _training_decoder(vae: AutoencoderKL) -> Iterator[list[torch.nn.Parameter]]:
    """Decoder weights trainable, everything else frozen; the previous state comes back on exit."""
    saved = [(p, p.requires_grad) for p in vae.parameters()]
    was_training = vae.training
    vae.requires_grad_(False)
    vae.decoder.requires_grad_(True)
    vae.decoder.train()
    try:
        yield list(vae.decoder.parameters())
    finally:
        vae.train(was_training)
        for parameter, flag in saved:
            parameter.requires_grad_(flag)


def finetune_decoder(
    vae: AutoencoderKL,
    images: list[torch.Tensor],
    *,
    steps: int,
    lr: float,
    crop_size: int,
    batch_size: int,
    seed: int,
    callback: ProgressCallback | None = None,
) -> FinetuneResult:
    """Adam on the decoder's weights (in place) minimizing L1 reconstruction of random crops.

    images: each (1, 3, H, W) in [-1, 1], any size. Crops and flips are drawn from ``seed``.
    The encoder runs once per crop, without gradients. ``callback`` gets ``{step, total, loss,
    latents}`` after every step (``latents`` None: there are none; the loss read every
    REPORT_EVERY steps); returning False stops after that step (``steps`` in the result says how many ran).
    """
    device = next(vae.parameters()).device
    side = crop_side(images, crop_size)
    generator = torch.Generator("cpu").manual_seed(seed)
    before = reconstruction_l1(vae, images)
    progress = Progress(callback, steps)
    step = -1
    with _training_decoder(vae) as parameters:
        optimizer = torch.optim.Adam(parameters, lr=lr)
        for step in range(steps):
            crops = random_crops(images, side, batch_size, generator).to(device, torch.float32)
            with torch.no_grad():
                latents = vae.encode(crops).latent_dist.mean
            optimizer.zero_grad(set_to_none=True)
            loss = (vae.decode(latents).sample - crops).abs().mean()
            loss.backward()
            optimizer.step()
            value = None
            if (step + 1) % REPORT_EVERY == 0 or step + 1 == steps:
                value = float(loss.detach()) / 2
                if not torch.isfinite(torch.tensor(value)):
                    raise NumericalError(f"the reconstruction loss became {value} at step {step + 1}: try a smaller {setting('lr')}")
            if not progress.report(step + 1, None, value):
                break
    return FinetuneResult(before, reconstruction_l1(vae, images), step + 1, side)
