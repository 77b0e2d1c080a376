"""Attention features of the UNet and the AD objective built on them (paper Sec. 3.2, Eqs. 3–5).

Shared by Algorithm 1 (:mod:`adcli.engine.distill`), the AD step of guided sampling
(:mod:`adcli.engine.guidance`) and MultiDiffusion: what a run distils from (:class:`Guide`), the
pass that captures a layer's q, k, v (:class:`FeatureExtractor`) and the loss over them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from diffusers import DDIMScheduler

from adcli.engine.attention import Capture, FeaturesComplete, FeatureStore, LayerFeatures, select_layers
from adcli.engine.compile import is_compiled
from adcli.engine.models import Backend, Conditioning
from adcli.losses import ad_loss_from_output, content_loss

Features = dict[int, LayerFeatures]
# (target token grid, reference token grid) → boolean (N, R·M) mask, or None for no mask.
MaskFn = Callable[[tuple[int, int], tuple[int, int]], torch.Tensor | None]


class FeatureExtractor:
    """Runs the UNet on latents at a timestep and returns the selected layers' attention tensors.

    The pass stops right after the last selected layer: nothing after it affects the loss. A
    compiled UNet runs to the end instead (one whole graph; the tail is 2–7 % of a pass).
    """

    def __init__(self, backend: Backend, layers: Sequence[int]):
        self.backend = backend
        self.positions = select_layers(backend.unet, layers)
        self.store = FeatureStore()
        self.capture = Capture(backend.unet, self.positions, self.store)
        self._inputs: dict[tuple, dict] = {}

    @contextmanager
    def installed(self) -> Iterator[FeatureExtractor]:
        with self.capture.installed():
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
