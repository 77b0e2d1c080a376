"""Literal Algorithms 1 and 2 (paper, supplementary A) and MultiDiffusion expansion: the speed
baselines ``make bench`` compares against.

Written the way the paper describes them, on purpose: each iteration runs separate full denoiser
passes (content, style/reference, target — none stopped early, reference features recomputed
every iteration and, for expansion, for every window), recomputes the target's attention inside
``adcli.losses.ad_loss`` and reads the loss back to the host. They share only model loading
(:class:`~adcli.engine.backend.Backend` and its architecture's denoiser call), the attention
capture processors, the schedule, the sampler step and the denoiser with the engine, so that a
speed-up over them is the engine's own.
"""

from __future__ import annotations

from collections.abc import Sequence

from contextlib import AbstractContextManager

import torch

from adcli.engine.attention import FeatureStore, LayerFeatures, select_layers
from adcli.engine.backend import Backend
from adcli.engine.config import ExpansionConfig, SamplingConfig
from adcli.engine.sampler import Denoiser
from adcli.engine.schedule import Point
from adcli.losses import ad_loss, content_loss


def _features(backend: Backend, store: FeatureStore, z: torch.Tensor, t: torch.Tensor) -> dict[int, LayerFeatures]:
    """{Q, K, V} ← ε_θ(z, t, ∅): one full denoiser pass; the prediction is thrown away."""
    store.clear()
    inputs = backend.model_inputs(backend.encode_prompts([""]), z.shape[0], tuple(z.shape[-2:]))
    backend.predict(z, t.to(backend.device).reshape(1).expand(z.shape[0]), inputs)
    features = dict(store.layers)
    store.clear()
    return features


def _positions(backend: Backend, layers) -> list[int]:
    return select_layers(len(backend.arch.attention_layers(backend.denoiser)), layers)


def _capture(backend: Backend, positions: list[int], store: FeatureStore) -> AbstractContextManager:
    """The architecture's capture processors on the layers at ``positions``, every pass run whole."""
    return backend.arch.capture(backend.denoiser, positions, store).installed()


def _noise(backend: Backend, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """The start latent (1, C, H/8, W/8) of a ``size`` = (width, height) image, drawn on the CPU."""
    factor = backend.vae_scale_factor
    shape = (1, backend.vae.config.latent_channels, size[1] // factor, size[0] // factor)
    return torch.randn(shape, generator=generator).to(backend.device)


def literal_algorithm1(
    backend: Backend,
    init: torch.Tensor,
    style: torch.Tensor,
    content: torch.Tensor | None,
    *,
    layers: Sequence[int],
    iterations: int,
    lr: float,
    content_weight: float,
) -> tuple[torch.Tensor, list[float]]:
    """Optimize ``init`` (1, 4, h, w) towards ``style``'s attention; returns the latent and every loss.

    ``content`` None (texture) drops line 6 and the content loss; otherwise line for line.
    """
    positions = _positions(backend, layers)
    store = FeatureStore()  # no stop_after: every pass runs the whole denoiser
    timesteps = backend.schedule(iterations, tuple(init.shape[-2:])).step_timesteps()
    z = init.detach().float().clone().to(backend.device).requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    losses = []
    with _capture(backend, positions, store):
        for t in timesteps:  # t = T … 1
            with torch.no_grad():
                content_features = _features(backend, store, content, t) if content is not None else None
                style_features = _features(backend, store, style, t)
            target = _features(backend, store, z, t)
            total = torch.zeros((), device=backend.device)
            for position, layer in target.items():
                ref = style_features[position]
                total = total + ad_loss(layer.q, layer.k, layer.v, ref.k, ref.v)
                if content_features is not None:
                    total = total + content_weight * content_loss(layer.q, content_features[position].q)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            losses.append(total.item())  # the host waits for the GPU every iteration
    return z.detach(), losses


def _adain(z: torch.Tensor, reference: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-channel mean and std of ``z`` set to the (pooled) reference's, as the paper's AdaIN."""
    mean, std = z.mean(dim=(2, 3), keepdim=True), z.std(dim=(2, 3), keepdim=True)
    ref_mean, ref_std = reference.mean(dim=(0, 2, 3), keepdim=True), reference.std(dim=(0, 2, 3), keepdim=True)
    return (z - mean) / (std + eps) * ref_std + ref_mean


def _ad_iterations(
    backend: Backend, store: FeatureStore, z: torch.Tensor, reference: torch.Tensor, t: torch.Tensor,
    iterations: int, lr: float,
) -> tuple[torch.Tensor, list[float]]:
    """Alg. 2 lines 9–13: a fresh Adam on ``z``; every iteration a full reference pass and a full
    target pass, the AD loss, one step, and the loss read back to the host."""
    z = z.detach().float().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    losses = []
    for _ in range(iterations):
        with torch.no_grad():
            ref = _features(backend, store, reference, t)  # recomputed every iteration
        target = _features(backend, store, z, t)
        total = torch.zeros((), device=backend.device)
        for position, layer in target.items():
            total = total + ad_loss(layer.q, layer.k, layer.v, ref[position].k, ref[position].v)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())  # the host waits for the GPU every iteration
    return z.detach(), losses


def _noised_reference(backend: Backend, reference: torch.Tensor, point: Point, generator: torch.Generator) -> torch.Tensor:
    """z_ref at ``point``; the noise is drawn on the CPU from the run's generator, as the engine does."""
    noise = torch.randn(reference.shape, generator=generator).to(backend.device)
    return backend.prediction.noised(reference, noise, point.sigma)


def literal_algorithm2(
    backend: Backend,
    denoise: Denoiser,
    reference: torch.Tensor,
    config: SamplingConfig,
    *,
    size: tuple[int, int],
    generator: torch.Generator,
) -> tuple[torch.Tensor, list[list[float]]]:
    """AD-guided sampling of a ``size`` = (width, height) image; returns the latent and the losses
    of every AD iteration, per step. Each step: a sampler step σ → σ', then at σ' the reference
    noised afresh, AdaIN when asked, and ``config.ad_iterations`` AD iterations."""
    z = _noise(backend, size, generator)
    schedule = backend.schedule(config.steps, tuple(z.shape[-2:]))
    reference = reference.to(backend.device).float()
    positions = _positions(backend, config.layers)
    store = FeatureStore()
    losses = []
    for index in range(schedule.steps):
        here, there = schedule[index], schedule[index + 1]
        with torch.no_grad():
            z = backend.prediction.step(z, denoise(z, here), here.sigma, there.sigma)
        if config.ad_iterations == 0:
            continue
        noised = _noised_reference(backend, reference, there, generator)
        if config.adain:
            z = _adain(z, noised)
        with _capture(backend, positions, store):
            z, step_losses = _ad_iterations(backend, store, z, noised, there.timestep, config.ad_iterations, config.lr)
        losses.append(step_losses)
    return z, losses


def views(height: int, width: int, window: int, stride: int) -> list[tuple[int, int, int, int]]:
    """MultiDiffusion's windows (top, left, height, width) every ``stride`` latents, plus one flush
    with the far edge when the stride does not reach it; an axis shorter than ``window`` gets one."""

    def starts(extent: int) -> list[int]:
        last = max(extent - window, 0)
        found = list(range(0, last + 1, stride))
        return found if found[-1] == last else found + [last]

    h, w = min(window, height), min(window, width)
    return [(top, left, h, w) for top in starts(height) for left in starts(width)]


def literal_multidiffusion(
    backend: Backend,
    denoise: Denoiser,
    reference: torch.Tensor,
    config: ExpansionConfig,
    *,
    size: tuple[int, int],
    generator: torch.Generator,
) -> tuple[torch.Tensor, list[list[float]]]:
    """Texture expansion as the official code does it: every step, each window in turn is cropped
    from x_t, denoised and stepped on its own, AdaIN'd when asked and given its own AD iterations —
    with the reference features recomputed per window and per iteration — and only then are all
    windows averaged into x_{t−1}. Returns the latent and every AD loss, per step (windows in
    order). No wrap-around windows (``config.wrap_x``/``wrap_y`` are not read)."""
    z = _noise(backend, size, generator)
    height, width = z.shape[-2:]
    schedule = backend.schedule(config.steps, (config.window, config.window))
    reference = reference.to(backend.device).float()
    tiles = views(height, width, config.window, config.stride)
    positions = _positions(backend, config.layers)
    store = FeatureStore()
    losses = []
    for index in range(schedule.steps):
        here, there = schedule[index], schedule[index + 1]
        if config.ad_iterations > 0:
            noised = _noised_reference(backend, reference, there, generator)
        value, count, step_losses = torch.zeros_like(z), torch.zeros_like(z), []
        for top, left, h, w in tiles:
            crop = z[..., top : top + h, left : left + w]
            with torch.no_grad():
                stepped = backend.prediction.step(crop, denoise(crop, here), here.sigma, there.sigma)
            if config.ad_iterations > 0:
                if config.adain:
                    stepped = _adain(stepped, noised)
                with _capture(backend, positions, store):
                    stepped, window_losses = _ad_iterations(
                        backend, store, stepped, noised, there.timestep, config.ad_iterations, config.lr
                    )
                step_losses += window_losses
            value[..., top : top + h, left : left + w] += stepped
            count[..., top : top + h, left : left + w] += 1
        z = value / count
        if step_losses:
            losses.append(step_losses)
    return z, losses
