"""A cheap look at a latent: a fixed linear map from the latent channels to RGB, no VAE pass.

A VAE's latents are close to a linear colour space: each latent pixel is roughly an RGB colour
times a (C, 3) matrix plus a bias. Each architecture holds the published approximations for its
latents (``Architecture.preview_factors``/``preview_bias``, fitted by the community on decoded
images) as the denoiser sees them, i.e. already multiplied by the VAE's scaling factor. The
result is blurry and its colours are approximate, which is all a live preview needs; it costs
one tiny matrix product.
"""

from __future__ import annotations

import torch
from PIL import Image

from adcli.engine import archs
from adcli.errors import InputError

# (C, 3): how much each latent channel adds to R, G and B, in [-1, 1] pixel units, per architecture.
LATENT_RGB_FACTORS = {arch.name: arch.preview_factors for arch in archs.ARCHITECTURES}
LATENT_RGB_BIAS = {arch.name: arch.preview_bias for arch in archs.ARCHITECTURES}
UPSCALE = 8  # the VAE's spatial factor: the preview has the output's size


def latent_to_rgb(latent: torch.Tensor, arch: str) -> torch.Tensor:
    """(C, h, w) latent → (h, w, 3) uint8 on the CPU; the maths runs where the latent lives."""
    if arch not in LATENT_RGB_FACTORS:
        raise InputError(f"no preview colours for architecture {arch!r}: expected one of {sorted(LATENT_RGB_FACTORS)}")
    channels = len(LATENT_RGB_FACTORS[arch])
    if latent.dim() != 3 or latent.shape[0] != channels:
        raise InputError(f"a preview needs a ({channels}, h, w) latent, got shape {tuple(latent.shape)}")
    latent = latent.detach().float()
    factors = torch.tensor(LATENT_RGB_FACTORS[arch], device=latent.device)  # (C, 3)
    bias = torch.tensor(LATENT_RGB_BIAS[arch], device=latent.device)  # (3,)
    rgb = torch.einsum("chw,cr->hwr", latent, factors) + bias  # (h, w, 3) in about [-1, 1]
    return ((rgb + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).cpu()


def upscaled(rgb: torch.Tensor, upscale: int = UPSCALE) -> Image.Image:
    """(h, w, 3) uint8 → an RGB picture ``upscale`` times larger each way (the decoded image's size)."""
    image = Image.fromarray(rgb.numpy(), "RGB")
    if upscale > 1:
        image = image.resize((image.width * upscale, image.height * upscale), Image.Resampling.BILINEAR)
    return image


def latent_preview(latent: torch.Tensor, arch: str, upscale: int = UPSCALE) -> Image.Image:
    """(C, h, w) latent → an RGB picture of about the decoded image's size, in one call."""
    return upscaled(latent_to_rgb(latent, arch), upscale)
