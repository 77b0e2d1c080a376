"""A literal Algorithm 1 (paper, supplementary A): the speed baseline ``make bench`` compares against.

Written the way the paper describes it, on purpose: each iteration runs three separate full UNet
passes (content, style, target — none stopped early), recomputes the target's attention inside
``adcli.losses.ad_loss`` and reads the loss back to the host. It shares only model loading
(:class:`~adcli.engine.models.Backend`) and the attention capture processors with the engine, so
that a speed-up over it is the engine's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import DDIMScheduler

from adcli.engine.attention import FeatureStore, LayerFeatures, capture, select_layers
from adcli.engine.models import Backend
from adcli.losses import ad_loss, content_loss


def _features(backend: Backend, store: FeatureStore, z: torch.Tensor, t: torch.Tensor) -> dict[int, LayerFeatures]:
    """{Q, K, V} ← ε_θ(z, t, ∅): one full UNet pass; the noise prediction is thrown away."""
    store.clear()
    store.grid_hint = tuple(z.shape[-2:])
    inputs = backend.unet_inputs(backend.encode_prompts([""]), z.shape[0], tuple(z.shape[-2:]))
    backend.unet(z.to(backend.dtype), t.to(backend.device).reshape(1).expand(z.shape[0]), **inputs)
    features = dict(store.layers)
    store.clear()
    return features


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
    positions = select_layers(backend.unet, layers)
    store = FeatureStore()  # no stop_after: every pass runs the whole UNet
    scheduler = DDIMScheduler.from_config(backend.scheduler.config)
    scheduler.set_timesteps(iterations)
    z = init.detach().float().clone().to(backend.device).requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    losses = []
    with capture(backend.unet, positions, store):
        for t in scheduler.timesteps:  # t = T … 1
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
