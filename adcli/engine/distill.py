"""Attention features of the UNet and the AD objective built on them (paper Sec. 3.2–3.3, Alg. 1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler

from adcli.engine.attention import FeaturesComplete, FeatureStore, LayerFeatures, capture, select_layers
from adcli.engine.models import Backend, Conditioning
from adcli.engine.optimize import StepCallback, optimize_latents
from adcli.losses import ad_loss_from_output, content_loss

Features = dict[int, LayerFeatures]
# (target token grid, reference token grid) → boolean (N, R·M) mask, or None for no mask.
MaskFn = Callable[[tuple[int, int], tuple[int, int]], torch.Tensor | None]


class FeatureExtractor:
    """Runs the UNet on latents at a timestep and returns the selected layers' attention tensors.

    The pass stops right after the last selected layer: nothing after it affects the loss.
    """

    def __init__(self, backend: Backend, layers: Sequence[int]):
        self.backend = backend
        self.positions = select_layers(backend.unet, layers)
        self.store = FeatureStore(stop_after=max(self.positions))

    @contextmanager
    def installed(self) -> Iterator[FeatureExtractor]:
        with capture(self.backend.unet, self.positions, self.store):
            yield self

    def __call__(
        self, latents: torch.Tensor, timestep: torch.Tensor, conditioning: Conditioning | None = None,
        unet_extra: dict | None = None,
    ) -> Features:
        backend = self.backend
        if conditioning is None:
            conditioning = backend.encode_prompts([""])
        batch = latents.shape[0]
        inputs = backend.unet_inputs(conditioning, batch, tuple(latents.shape[-2:]))
        inputs.update(unet_extra or {})
        self.store.clear()
        self.store.grid_hint = tuple(latents.shape[-2:])
        t = timestep.to(backend.device).reshape(-1).expand(batch)
        try:
            backend.unet(latents.to(backend.dtype), t, **inputs)
        except FeaturesComplete:
            pass
        features = dict(self.store.layers)
        self.store.clear()
        return features


def split_features(features: Features, sizes: Sequence[int]) -> list[Features]:
    """Split a batched pass's features into groups of ``sizes`` items (e.g. references, content)."""
    groups: list[Features] = [{} for _ in sizes]
    for position, layer in features.items():
        parts = [torch.split(x, list(sizes)) for x in (layer.q, layer.k, layer.v, layer.out)]
        for index, group in enumerate(groups):
            group[position] = LayerFeatures(*(p[index] for p in parts), grid=layer.grid)
    return groups


def distillation_loss(
    target: Features,
    reference: Features,
    content: Features | None = None,
    content_weight: float = 0.0,
    mask_fn: MaskFn | None = None,
) -> torch.Tensor:
    """L = Σ_layers AD(target, reference) + λ · Σ_layers content(target, content)  (paper Eq. 5)."""
    total = torch.zeros((), device=next(iter(target.values())).q.device)
    for position, layer in target.items():
        ref = reference[position]
        mask = mask_fn(layer.grid, ref.grid) if mask_fn is not None else None
        total = total + ad_loss_from_output(layer.out, layer.q, ref.k, ref.v, mask)
        if content is not None and content_weight > 0:
            total = total + content_weight * content_loss(layer.q, content[position].q)
    return total


def ddim_timesteps(backend: Backend, steps: int) -> torch.Tensor:
    """The DDIM scheduler's timesteps for ``steps`` steps, from near T down to near 0."""
    scheduler = DDIMScheduler.from_config(backend.scheduler.config)
    scheduler.set_timesteps(steps)
    return scheduler.timesteps.clone()


@dataclass
class Guide:
    """What a run distils from: reference latents (R, 4, h, w), optional content latents (B or 1, 4, h, w)."""

    reference: torch.Tensor
    content: torch.Tensor | None = None
    content_weight: float = 0.0
    mask_fn: MaskFn | None = None

    def clean_features(self, extract: FeatureExtractor, timestep: torch.Tensor) -> tuple[Features, Features | None]:
        """Reference and content features in one no-gradient UNet batch."""
        use_content = self.content is not None and self.content_weight > 0
        latents = torch.cat([self.reference, self.content]) if use_content else self.reference
        with torch.no_grad():
            features = extract(latents, timestep)
        if not use_content:
            return features, None
        reference, content = split_features(features, [self.reference.shape[0], self.content.shape[0]])
        return reference, content

    def loss(self, extract: FeatureExtractor, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        reference, content = self.clean_features(extract, timestep)
        target = extract(latents, timestep)
        return distillation_loss(target, reference, content, self.content_weight, self.mask_fn)


def distill_by_optimization(
    backend: Backend,
    init_latents: torch.Tensor,
    guide: Guide,
    *,
    layers: Sequence[int],
    iterations: int,
    lr: float,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Algorithm 1: Adam on the latent while the UNet's timestep falls linearly from T to 0.

    Reference and content features come from their clean latents at the same timestep; the
    UNet's noise prediction is never used.
    """
    extract = FeatureExtractor(backend, layers)
    timesteps = ddim_timesteps(backend, iterations)
    reference = guide.reference.to(backend.device)
    content = None if guide.content is None else guide.content.to(backend.device)
    guide = Guide(reference, content, guide.content_weight, guide.mask_fn)
    # Starting from the content latent (transfer), the content term of the first iteration is exactly 0
    # with a zero gradient; computed from two UNet batches it would be float noise whose L1 gradient (a
    # sign) is as large as a real one, and would make results depend on how images were batched.
    init_latents = init_latents.to(backend.device)
    starts_at_content = content is not None and content.shape == init_latents.shape and torch.equal(content, init_latents)
    first = Guide(reference, None, 0.0, guide.mask_fn) if starts_at_content else guide
    # A batch of B latents: sum the items' losses (B × the batch mean), so each item gets the gradient
    # it would get alone (Adam is scale-invariant but for its eps) and batched = one-at-a-time results.
    batch = init_latents.shape[0]
    report = on_step
    if on_step is not None and batch > 1:
        report = lambda step, total, loss: on_step(step, total, None if loss is None else loss / batch)  # noqa: E731
    with extract.installed():
        return optimize_latents(
            init_latents,
            lambda z, i: (first if i == 0 else guide).loss(extract, z, timesteps[i]) * batch,
            iterations,
            lr,
            report,
        )
