"""Literal AD-guided flow-matching sampling (FLUX.1, SD3.5): the reference loop of the paper's FLUX
code, the speed baseline of ``make bench``'s tiny-FLUX and tiny-SD3 rows.

Written out the way that code runs, on purpose: an Euler step ``x + (σ' − σ)·v`` of the flow,
then the reference noised to σ' as ``(1 − σ')·x_ref + σ'·ε``, AdaIN of the 2×2-packed latent tokens
to the noised reference's (per packed channel, unbiased std, eps on the latent's std), and a fresh
Adam on the latent for a few iterations, each with a full reference pass (the reference's keys and
values of every selected layer, empty prompt) and a full target pass, the L1 between
``SDPA(q, k, v)`` and ``SDPA(q, k_ref, v_ref)`` over the joint sequence (text rows too) recomputed
in :func:`adcli.losses.ad_loss`, and the loss read back every iteration. It shares with the engine
only the loaded model, its denoiser call, its capture processors and its schedule (σ and the
denoiser's timestep, which reproduce FluxPipeline's and StableDiffusion3Pipeline's).
"""

from __future__ import annotations

import torch

from adcli.engine.attention import FeatureStore
from adcli.engine.backend import Backend
from adcli.engine.config import SamplingConfig
from adcli.engine.sampler import Denoiser
from benchmarks.baseline import _ad_iterations, _capture, _positions


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, H/2·W/2, 4C): one token per 2×2 patch, channels (c, dy, dx)."""
    b, c, h, w = latents.shape
    return latents.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h // 2 * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, h/2·w/2, 4C) → (B, C, h, w): the inverse of :func:`pack`."""
    b, _, packed = tokens.shape
    c = packed // 4
    return tokens.reshape(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def packed_adain(x: torch.Tensor, reference: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """AdaIN of the latent's packed tokens to the reference's: per token channel, over the tokens."""
    tokens, ref = pack(x), pack(reference)
    mean, std = tokens.mean(dim=1, keepdim=True), tokens.std(dim=1, keepdim=True)
    ref_mean, ref_std = ref.mean(dim=(0, 1), keepdim=True), ref.std(dim=(0, 1), keepdim=True)
    return unpack((tokens - mean) / (std + eps) * ref_std + ref_mean, *x.shape[-2:])


def literal_flow_sampling(
    backend: Backend,
    denoise: Denoiser,
    reference: torch.Tensor,
    config: SamplingConfig,
    *,
    size: tuple[int, int],
    generator: torch.Generator,
) -> tuple[torch.Tensor, list[list[float]]]:
    """AD-guided flow-matching sampling of a ``size`` = (width, height) image from noise drawn on the
    CPU from ``generator``; returns the latent (1, C, H/8, W/8) and every AD iteration's loss, per step."""
    factor = backend.vae_scale_factor
    x = torch.randn(1, backend.arch.latent_channels, size[1] // factor, size[0] // factor, generator=generator)
    x = x.to(backend.device)
    schedule = backend.schedule(config.steps, tuple(x.shape[-2:]))
    reference = reference.to(backend.device).float()
    positions, store = _positions(backend, config.layers), FeatureStore()
    losses = []
    for i in range(schedule.steps):
        sigma, sigma_next = schedule.sigmas[i], schedule.sigmas[i + 1]
        with torch.no_grad():
            velocity = denoise(x, schedule[i])
        x = x.float() + (sigma_next - sigma) * velocity  # Euler
        if config.ad_iterations == 0:
            continue
        noise = torch.randn(reference.shape, generator=generator).to(backend.device)
        s = sigma_next.float()
        noised = (1.0 - s) * reference + s * noise  # the reference at σ' (clean after the last step)
        if config.adain:
            x = packed_adain(x, noised)
        with _capture(backend, positions, store):
            x, step_losses = _ad_iterations(backend, store, x, noised, schedule[i + 1].timestep,
                                            config.ad_iterations, config.lr)
        losses.append(step_losses)
    return x, losses
