"""Attention features of the UNet and the AD objective built on them (paper Sec. 3.2–3.3, Alg. 1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from diffusers import DDIMScheduler

from adcli.engine.attention import FeaturesComplete, FeatureStore, LayerFeatures, capture, select_layers
from adcli.engine.compile import is_compiled
from adcli.engine.models import Backend, Conditioning
from adcli.engine.optimize import REPORT_EVERY, StepCallback, optimize_latents
from adcli.losses import ad_loss_from_output, content_loss

Features = dict[int, LayerFeatures]
# (target token grid, reference token grid) → boolean (N, R·M) mask, or None for no mask.
MaskFn = Callable[[tuple[int, int], tuple[int, int]], torch.Tensor | None]
# Timesteps whose reference/content features one no-gradient UNet batch computes ahead of the
# optimization (they do not depend on the latent); 1 = one timestep per pass. Fewer, larger passes
# measured 1.3–1.5× faster on the tiny models (CPU); ``make bench`` compares 1, 4 and 8 on a GPU.
FEATURE_CHUNK = 4


class FeatureExtractor:
    """Runs the UNet on latents at a timestep and returns the selected layers' attention tensors.

    The pass stops right after the last selected layer: nothing after it affects the loss. A
    compiled UNet runs to the end instead (one whole graph; the tail is 2–7 % of a pass).
    """

    def __init__(self, backend: Backend, layers: Sequence[int]):
        self.backend = backend
        self.positions = select_layers(backend.unet, layers)
        self.store = FeatureStore()
        self._inputs: dict[tuple, dict] = {}

    @contextmanager
    def installed(self) -> Iterator[FeatureExtractor]:
        with capture(self.backend.unet, self.positions, self.store):
            yield self

    def __call__(
        self, latents: torch.Tensor, timestep: torch.Tensor, conditioning: Conditioning | None = None,
        unet_extra: dict | None = None,
    ) -> Features:
        backend = self.backend
        batch = latents.shape[0]
        inputs = dict(self._empty_prompt_inputs(batch, tuple(latents.shape[-2:])) if conditioning is None
                      else backend.unet_inputs(conditioning, batch, tuple(latents.shape[-2:])))
        inputs.update(unet_extra or {})
        self.store.clear()
        # timestep: a scalar, or one per item (B,)
        t = timestep.to(backend.device).reshape(-1).expand(batch)
        self.store.stop_after = None if is_compiled(backend.unet) else max(self.positions)
        try:
            backend.unet(latents.to(backend.dtype), t, **inputs)
        except FeaturesComplete:
            pass
        finally:
            # Never stop a recomputation (gradient checkpointing replays blocks during backward).
            self.store.stop_after = None
        features = dict(self.store.layers)
        self.store.clear()
        return features

    def _empty_prompt_inputs(self, batch: int, latent_hw: tuple[int, int]) -> dict:
        """UNet inputs for the empty prompt, built once per shape: building them copies small
        tensors to the GPU, and each such copy makes the host wait for the GPU."""
        key = (batch, latent_hw)
        if key not in self._inputs:
            self._inputs[key] = self.backend.unet_inputs(self.backend.encode_prompts([""]), batch, latent_hw)
        return self._inputs[key]


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

    def to(self, device: torch.device) -> Guide:
        """The same guide with its latents on ``device``."""
        content = None if self.content is None else self.content.to(device)
        return replace(self, reference=self.reference.to(device), content=content)

    def clean_features(self, extract: FeatureExtractor, timestep: torch.Tensor) -> tuple[Features, Features | None]:
        """Reference and content features in one no-gradient UNet batch."""
        return self.clean_features_at(extract, timestep.reshape(1))[0]

    def clean_features_at(
        self, extract: FeatureExtractor, timesteps: torch.Tensor
    ) -> list[tuple[Features, Features | None]]:
        """(reference, content) features at each of ``timesteps`` (S,), all in one no-gradient batch
        of S·(R + C) items: they do not depend on the latent, so a run can compute them ahead."""
        use_content = self.content is not None and self.content_weight > 0
        if use_content and self.content.shape[-2:] != self.reference.shape[-2:]:
            # Different sizes (masked texture: reference at its own shape) cannot share a batch.
            with torch.no_grad():
                return [(extract(self.reference, t), extract(self.content, t)) for t in timesteps.reshape(-1)]
        latents = torch.cat([self.reference, self.content]) if use_content else self.reference
        items, steps = latents.shape[0], timesteps.numel()
        with torch.no_grad():
            # (S·(R+C), 4, h, w), timestep-major, each item with its own timestep
            per_item = timesteps.reshape(-1, 1).expand(-1, items).reshape(-1)  # (S·(R+C),)
            features = extract(latents.repeat(steps, 1, 1, 1), per_item)
        per_step = split_features(features, [items] * steps) if steps > 1 else [features]
        if not use_content:
            return [(step, None) for step in per_step]
        sizes = [self.reference.shape[0], self.content.shape[0]]
        return [tuple(split_features(step, sizes)) for step in per_step]

    def loss(self, extract: FeatureExtractor, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        reference, content = self.clean_features(extract, timestep)
        target = extract(latents, timestep)
        return distillation_loss(target, reference, content, self.content_weight, self.mask_fn)


class CleanFeatureChunks:
    """Reference/content features for a run's timesteps, computed ``chunk`` timesteps at a time.

    Only one chunk is held at once (memory grows with ``chunk``). The last chunk is padded with
    its final timestep so that every batch has the same shape (one graph under ``--compile``).
    """

    def __init__(self, guide: Guide, extract: FeatureExtractor, timesteps: torch.Tensor, chunk: int):
        self.guide, self.extract, self.timesteps = guide, extract, timesteps
        self.chunk = max(1, min(chunk, timesteps.numel()))
        self._start: int | None = None
        self._features: list[tuple[Features, Features | None]] = []

    def __getitem__(self, index: int) -> tuple[Features, Features | None]:
        start = index - index % self.chunk
        if start != self._start:
            self._features = []  # free the previous chunk before computing the next
            steps = self.timesteps[start : start + self.chunk]
            if steps.numel() < self.chunk:
                steps = torch.cat([steps, steps[-1:].expand(self.chunk - steps.numel())])
            self._features = self.guide.clean_features_at(self.extract, steps)
            self._start = start
        return self._features[index - start]


def distill_by_optimization(
    backend: Backend,
    init_latents: torch.Tensor,
    guide: Guide,
    *,
    layers: Sequence[int],
    iterations: int,
    lr: float,
    on_step: StepCallback | None = None,
    feature_chunk: int = FEATURE_CHUNK,
    report_every: int = REPORT_EVERY,
) -> torch.Tensor:
    """Algorithm 1: Adam on the latent while the UNet's timestep falls linearly from T to 0.

    Reference and content features come from their clean latents at the same timestep, computed
    ``feature_chunk`` timesteps per no-gradient pass; the UNet's noise prediction is never used.
    The loss is read back from the device every ``report_every`` iterations only.
    """
    extract = FeatureExtractor(backend, layers)
    timesteps = ddim_timesteps(backend, iterations).to(backend.device)  # on the device: no copy per step
    guide = guide.to(backend.device)
    content = guide.content
    # Starting from the content latent (transfer), the content term of the first iteration is exactly 0
    # with a zero gradient; computed from two UNet batches it would be float noise whose L1 gradient (a
    # sign) is as large as a real one, and would make results depend on how images were batched.
    init_latents = init_latents.to(backend.device)
    starts_at_content = content is not None and content.shape == init_latents.shape and torch.equal(content, init_latents)
    # A batch of B latents: sum the items' losses (B × the batch mean), so each item gets the gradient
    # it would get alone (Adam is scale-invariant but for its eps) and batched = one-at-a-time results.
    batch = init_latents.shape[0]
    clean = CleanFeatureChunks(guide, extract, timesteps, feature_chunk)

    def loss(z: torch.Tensor, i: int) -> torch.Tensor:
        reference_features, content_features = clean[i]
        weight = 0.0 if i == 0 and starts_at_content else guide.content_weight
        target = extract(z, timesteps[i])
        return distillation_loss(target, reference_features, content_features, weight, guide.mask_fn) * batch

    report = on_step
    if on_step is not None and batch > 1:
        report = lambda step, total, value: on_step(step, total, None if value is None else value / batch)  # noqa: E731
    with extract.installed():
        return optimize_latents(init_latents, loss, iterations, lr, report, report_every)
