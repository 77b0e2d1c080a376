"""Flow matching for FLUX.1 and SD3/SD3.5, as pure functions of tensors and a scheduler config.

The model predicts a velocity ``v ≈ ε − x₀`` at noise level σ ∈ [0, 1]; a noised latent is
``(1 − σ)·x₀ + σ·ε``; one Euler step from σ to σ' is ``x + (σ' − σ)·v``. What differs between
the two families is the schedule: both start from ``linspace`` and shift it towards high noise —
FLUX.1-dev by ``mu``, which grows with the number of image tokens (schnell: no shift), SD3.5 by
a fixed ``shift`` 3 — and how σ reaches the transformer (FLUX: ``σ`` cast to the latent dtype;
SD3: ``1000·σ``). :func:`flux_sigmas` and :func:`sd3_sigmas` reproduce the schedules FluxPipeline
and StableDiffusion3Pipeline set, bit for bit (numpy in the same precision as diffusers 0.42).

FLUX works on 2×2-packed tokens: a (B, 16, H, W) latent is (B, H/2·W/2, 64) (:func:`pack_latents`),
each token placed by its (0, row, column) position id; text tokens all sit at position 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch

# The FlowMatchEulerDiscreteScheduler defaults, for configs that leave a key out.
_DEFAULTS = {
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "use_dynamic_shifting": False,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
    "time_shift_type": "exponential",
}
# Scheduler options whose schedules these functions do not reproduce.
_UNSUPPORTED = ("shift_terminal", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                "invert_sigmas", "stochastic_sampling", "use_flow_sigmas")

# (latents, σ as a 0-dim tensor) → velocity, the shape of the latents
Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (latents after an Euler step, the σ they are now at) → latents
AfterStep = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _setting(config: Mapping, key: str):
    return config.get(key, _DEFAULTS[key])


def _check_supported(config: Mapping) -> None:
    used = [key for key in _UNSUPPORTED if config.get(key)]
    if used:
        raise ValueError(f"flow-matching scheduler option {', '.join(used)} is not supported (the pipelines' "
                         f"FLUX.1 and SD3.5 configurations do not use it)")


def flux_mu(image_tokens: int, config: Mapping) -> float:
    """FLUX.1's resolution-dependent shift: linear in the number of image tokens, ``base_shift`` at
    ``base_image_seq_len`` tokens (256: 256²-px) and ``max_shift`` at ``max_image_seq_len`` (4096: 1024²)."""
    base, top = _setting(config, "base_image_seq_len"), _setting(config, "max_image_seq_len")
    slope = (_setting(config, "max_shift") - _setting(config, "base_shift")) / (top - base)
    intercept = _setting(config, "base_shift") - slope * base
    return image_tokens * slope + intercept


def _shifted(sigmas: np.ndarray, config: Mapping, mu: float | None) -> np.ndarray:
    """The scheduler's shift, in the precision of ``sigmas``: ``e^mu / (e^mu + 1/σ − 1)`` when the
    shift is dynamic, else ``s·σ / (1 + (s − 1)·σ)`` with the static shift ``s``."""
    if _setting(config, "use_dynamic_shifting"):
        if mu is None:
            raise ValueError("this scheduler shifts by image size: give the number of image tokens")
        if _setting(config, "time_shift_type") == "linear":
            return mu / (mu + (1 / sigmas - 1) ** 1.0)
        return math.exp(mu) / (math.exp(mu) + (1 / sigmas - 1) ** 1.0)
    shift = _setting(config, "shift")
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def _with_final_zero(sigmas: np.ndarray) -> torch.Tensor:
    sigmas = torch.from_numpy(sigmas).to(torch.float32)
    return torch.cat([sigmas, torch.zeros(1)])


def flux_sigmas(steps: int, image_tokens: int, config: Mapping) -> torch.Tensor:
    """FluxPipeline's σ schedule, (steps + 1,) fp32 from 1 down to a final 0.

    ``linspace(1, 1/steps, steps)`` in fp32, shifted by ``mu(image_tokens)`` (FLUX.1-dev) or by
    the static shift (schnell: 1, none).
    """
    _check_supported(config)
    sigmas = np.linspace(1.0, 1 / steps, steps).astype(np.float32)
    return _with_final_zero(_shifted(sigmas, config, flux_mu(image_tokens, config)))


def sd3_sigmas(steps: int, config: Mapping, image_tokens: int | None = None) -> torch.Tensor:
    """StableDiffusion3Pipeline's σ schedule, (steps + 1,) fp32 from 1 down to a final 0.

    The pipeline passes no sigmas, so the scheduler spaces them linearly between its own extremes
    — 1 and its *shifted* 1/1000 — and shifts them again: with SD3.5's shift 3 the last σ before
    0 is ≈ 0.009, not 1/steps shifted. ``image_tokens`` (2×2 patches) only for a dynamic config.
    """
    _check_supported(config)
    train = _setting(config, "num_train_timesteps")
    # σ_max and σ_min as the scheduler's constructor leaves them: the ends of its training σ
    # (train/train and 1/train), shifted in torch fp32 unless the shift is dynamic.
    ends = torch.tensor([float(train), 1.0], dtype=torch.float32) / train
    if not _setting(config, "use_dynamic_shifting"):
        shift = _setting(config, "shift")
        ends = shift * ends / (1 + (shift - 1) * ends)
    largest, smallest = (value.item() for value in ends)
    timesteps = np.linspace(largest * train, smallest * train, steps)  # fp64, as set_timesteps
    mu = None
    if _setting(config, "use_dynamic_shifting") and image_tokens is not None:
        mu = flux_mu(image_tokens, config)
    return _with_final_zero(_shifted(timesteps / train, config, mu))


def scheduler_timestep(sigma: torch.Tensor, config: Mapping) -> torch.Tensor:
    """The scheduler's timestep for σ, ``σ·num_train_timesteps`` (fp32): what both pipelines start from."""
    return sigma * _setting(config, "num_train_timesteps")


def flux_timestep(sigma: torch.Tensor, batch: int, dtype: torch.dtype, config: Mapping) -> torch.Tensor:
    """The ``timestep`` FluxPipeline passes its transformer, (batch,): the scheduler's timestep cast
    to the latents' dtype, then / 1000 (the transformer multiplies by 1000 again)."""
    return scheduler_timestep(sigma, config).expand(batch).to(dtype) / 1000


def sd3_timestep(sigma: torch.Tensor, batch: int, config: Mapping) -> torch.Tensor:
    """The ``timestep`` StableDiffusion3Pipeline passes its transformer, (batch,) fp32 in [0, 1000]."""
    return scheduler_timestep(sigma, config).expand(batch)


def euler_step(x: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """One Euler step of the flow ODE, ``x + (σ_next − σ)·v``, in fp32 (as the scheduler computes it;
    the pipelines then cast back to the model's dtype, we keep fp32)."""
    return x.float() + (sigma_next - sigma) * velocity


def sample_euler(
    velocity: Velocity, x: torch.Tensor, sigmas: torch.Tensor, after_step: AfterStep | None = None
) -> torch.Tensor:
    """Euler from ``x`` at ``sigmas[0]`` down to ``sigmas[-1]`` (0), k-diffusion style: no scheduler
    object, ``after_step(x, σ_next)`` (the AD hook) after each step, the last one included."""
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        with torch.no_grad():
            x = euler_step(x, velocity(x, sigma), sigma, sigma_next)
        if after_step is not None:
            x = after_step(x, sigma_next)
    return x


def add_flow_noise(x: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """The flow-matching forward process, ``(1 − σ)·x + σ·ε`` (σ 0: ``x``; σ 1: pure noise)."""
    return sigma * noise + (1.0 - sigma) * x


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, H/2·W/2, 4C): each 2×2 patch one token, its channels (c, dy, dx) in that order."""
    batch, channels, height, width = latents.shape
    patches = latents.view(batch, channels, height // 2, 2, width // 2, 2)
    return patches.permute(0, 2, 4, 1, 3, 5).reshape(batch, (height // 2) * (width // 2), channels * 4)


def unpack_latents(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, h·w, 4C) tokens on an (h, w) grid → (B, C, 2h, 2w): the inverse of :func:`pack_latents`."""
    batch, _, packed = tokens.shape
    height, width = grid
    patches = tokens.view(batch, height, width, packed // 4, 2, 2)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape(batch, packed // 4, height * 2, width * 2)


def flux_image_ids(
    grid: tuple[int, int], device: torch.device | None = None, dtype: torch.dtype = torch.float32,
    origin: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """(h·w, 3) RoPE positions of an (h, w) token grid, row-major: (0, row, column), offset by
    ``origin`` (a window's top-left token in a larger picture)."""
    height, width = grid
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width) + origin[0]
    columns = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width) + origin[1]
    ids = torch.stack([torch.zeros_like(rows), rows, columns], dim=-1)
    return ids.reshape(height * width, 3).to(device=device, dtype=dtype)


def flux_text_ids(tokens: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(T, 3) positions of the text tokens: all zero, so RoPE leaves them unrotated."""
    return torch.zeros(tokens, 3, device=device, dtype=dtype)


def adain_tokens(tokens: torch.Tensor, reference: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Give each latent's tokens (B, N, C) the per-channel mean and std of ``reference`` (R, M, C).

    On FLUX's packed tokens a channel is one (latent channel, dy, dx) of the 2×2 patch. Each
    latent's statistics are over its own tokens; the reference's are pooled over all R references
    and their tokens. Unbiased std; ``eps`` is added to the latent's std (the paper's FLUX code).
    """
    mean, std = tokens.mean(dim=1, keepdim=True), tokens.std(dim=1, keepdim=True)
    ref_mean, ref_std = reference.mean(dim=(0, 1), keepdim=True), reference.std(dim=(0, 1), keepdim=True)
    return (tokens - mean) / (std + eps) * ref_std + ref_mean
