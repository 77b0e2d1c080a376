"""A cheap look at a latent: a fixed linear map from the 4 latent channels to RGB, no VAE pass.

Stable Diffusion's VAE latents are close to a linear colour space: each latent pixel is roughly
an RGB colour times a 4×3 matrix plus a bias. The factors below are the published approximations
(fitted by the community on decoded images; SD1.5 and SDXL differ) for latents as the UNet sees
them, i.e. already multiplied by the VAE's scaling factor. The result is blurry and its colours
are approximate, which is all a live preview needs; it costs one tiny matrix product.
"""

from __future__ import annotations

import torch
from PIL import Image

from adcli.errors import InputError

# (4, 3): how much each latent channel adds to R, G and B, in [-1, 1] pixel units.
LATENT_RGB_FACTORS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "sd15": (
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    ),
    "sdxl": (
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    ),
}
LATENT_RGB_BIAS: dict[str, tuple[float, float, float]] = {
    "sd15": (0.0, 0.0, 0.0),
    "sdxl": (0.1084, -0.0175, -0.0011),
}
UPSCALE = 8  # the VAE's spatial factor: the preview has the output's size


def latent_to_rgb(latent: torch.Tensor, arch: str) -> torch.Tensor:
    """(4, h, w) latent → (h, w, 3) uint8 on the CPU; the maths runs where the latent lives."""
    if arch not in LATENT_RGB_FACTORS:
        raise InputError(f"no preview colours for architecture {arch!r}: expected one of {sorted(LATENT_RGB_FACTORS)}")
    if latent.dim() != 3 or latent.shape[0] != 4:
        raise InputError(f"a preview needs a (4, h, w) latent, got shape {tuple(latent.shape)}")
    latent = latent.detach().float()
    factors = torch.tensor(LATENT_RGB_FACTORS[arch], device=latent.device)  # (4, 3)
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
    """(4, h, w) latent → an RGB picture of about the decoded image's size, in one call."""
    return upscaled(latent_to_rgb(latent, arch), upscale)
