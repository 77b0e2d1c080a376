"""Attention features of the denoiser and the AD objective built on them (paper Sec. 3.2, Eqs. 3–5).

Shared by Algorithm 1 (:mod:`adcli.engine.distill`), the AD step of guided sampling
(:mod:`adcli.engine.guidance`) and MultiDiffusion: what a run distils from (:class:`Guide`), the
pass that captures a layer's q, k, v (:class:`FeatureExtractor`) and the loss over them. The
architecture (``backend.arch``) says which modules are the layers and how the denoiser is called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch

from adcli.engine.attention import FeaturesComplete, FeatureStore, LayerFeatures, select_layers
from adcli.engine.backend import Backend, Conditioning
from adcli.engine.compile import is_compiled
from adcli.losses import ad_loss_per_item, content_loss_per_item

Features = dict[int, LayerFeatures]
# (target token grid, reference token grid) → boolean (N, R·M) mask over image tokens, or None for no mask.
MaskFn = Callable[[tuple[int, int], tuple[int, int]], torch.Tensor | None]


class FeatureExtractor:
    """Runs the denoiser on latents at a timestep and returns the selected layers' attention tensors.

    The pass stops right after the last selected layer: nothing after it affects the loss. A
    compiled denoiser runs to the end instead (one whole graph; the tail is 2–7 % of a pass).
    """

    def __init__(self, backend: Backend, layers: Sequence[int]):
        self.backend = backend
        count = len(backend.arch.attention_layers(backend.denoiser))
        self.positions = select_layers(count, layers)
        self.store = FeatureStore()
        self.capture = backend.arch.capture(backend.denoiser, self.positions, self.store)
        self._inputs: dict[tuple, dict] = {}

    @contextmanager
    def installed(self) -> Iterator[FeatureExtractor]:
        with self.capture.installed():
            yield self

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor, conditioning: Conditioning | None = None) -> Features:
        """Features of ``latents`` (B, C, h, w) at ``timestep`` (a scalar, or one per item (B,));
        the empty prompt unless ``conditioning`` is given."""
        backend = self.backend
        batch, latent_hw = latents.shape[0], tuple(latents.shape[-2:])
        inputs = (self._empty_prompt_inputs(batch, latent_hw) if conditioning is None
                  else backend.model_inputs(conditioning, batch, latent_hw))
        self.store.clear()
        t = timestep.to(backend.device).reshape(-1).expand(batch)
        self.store.stop_after = None if is_compiled(backend.denoiser) else max(self.positions)
        try:
            backend.predict(latents, t, inputs)
        except FeaturesComplete:
            pass
        finally:
            # Never stop a recomputation (gradient checkpointing replays blocks during backward).
            self.store.stop_after = None
        features = dict(self.store.layers)
        self.store.clear()
        return features

    def _empty_prompt_inputs(self, batch: int, latent_hw: tuple[int, int]) -> dict:
        """Denoiser inputs for the empty prompt, built once per shape: building them copies small
        tensors to the GPU, and each such copy makes the host wait for the GPU."""
        key = (batch, latent_hw)
        if key not in self._inputs:
            self._inputs[key] = self.backend.model_inputs(self.backend.encode_prompts([""]), batch, latent_hw)
        return self._inputs[key]


def split_features(features: Features, sizes: Sequence[int]) -> list[Features]:
    """Split a batched pass's features into groups of ``sizes`` items (e.g. references, content)."""
    groups: list[Features] = [{} for _ in sizes]
    for position, layer in features.items():
        parts = [torch.split(x, list(sizes)) for x in (layer.q, layer.k, layer.v, layer.out)]
        for index, group in enumerate(groups):
            q, k, v, out = (p[index] for p in parts)
            group[position] = replace(layer, q=q, k=k, v=v, out=out)
    return groups


def sequence_mask(image_mask: torch.Tensor, target: LayerFeatures, reference: LayerFeatures) -> torch.Tensor:
    """An image-token mask (N_img, R·M_img) as a mask over the whole sequences (N, R·M): image
    queries see the reference image tokens the mask allows, text tokens are unmasked. In a UNet
    layer (every token an image token) the mask is returned as it is."""
    if target.all_image and reference.all_image:
        return image_mask
    queries, keys = target.q.shape[-2], reference.k.shape[-2]  # per reference
    refs = image_mask.shape[-1] // reference.image_tokens
    full = torch.ones(queries, refs * keys, dtype=torch.bool, device=image_mask.device)
    rows = torch.arange(queries, device=image_mask.device)[target.image]
    for r in range(refs):
        columns = torch.arange(keys, device=image_mask.device)[reference.image] + r * keys
        block = image_mask[:, r * reference.image_tokens : (r + 1) * reference.image_tokens]
        full[rows.unsqueeze(1), columns.unsqueeze(0)] = block
    return full


def _image_queries(layer: LayerFeatures) -> torch.Tensor:
    return layer.q if layer.all_image else layer.q[:, :, layer.image]


def distillation_losses(
    target: Features,
    reference: Features,
    content: Features | None = None,
    content_weight: float = 0.0,
    mask_fn: MaskFn | None = None,
) -> torch.Tensor:
    """Per target item (B,): L = Σ_layers AD(target, reference) + λ · Σ_layers content(target, content)
    (paper Eq. 5), each item's own — a batch's items do not share a loss. The content term compares
    image-token queries only."""
    total: torch.Tensor | None = None
    for position, layer in target.items():
        ref = reference[position]
        mask = None
        if mask_fn is not None:
            image_mask = mask_fn(layer.grid, ref.grid)
            mask = None if image_mask is None else sequence_mask(image_mask, layer, ref)
        term = ad_loss_per_item(layer.out, layer.q, ref.k, ref.v, mask)
        if content is not None and content_weight > 0:
            term = term + content_weight * content_loss_per_item(_image_queries(layer), _image_queries(content[position]))
        total = term if total is None else total + term
    return total


def distillation_loss(
    target: Features,
    reference: Features,
    content: Features | None = None,
    content_weight: float = 0.0,
    mask_fn: MaskFn | None = None,
) -> torch.Tensor:
    """The batch mean of :func:`distillation_losses`, a scalar."""
    return distillation_losses(target, reference, content, content_weight, mask_fn).mean()


@dataclass
class Guide:
    """What a run distils from: reference latents (R, C, h, w), optional content latents (B or 1, C, h, w)."""

    reference: torch.Tensor
    content: torch.Tensor | None = None
    content_weight: float = 0.0
    mask_fn: MaskFn | None = None

    def to(self, device: torch.device) -> Guide:
        """The same guide with its latents on ``device``."""
        content = None if self.content is None else self.content.to(device)
        return replace(self, reference=self.reference.to(device), content=content)

    def clean_features(self, extract: FeatureExtractor, timestep: torch.Tensor) -> tuple[Features, Features | None]:
        """Reference and content features in one no-gradient denoiser batch."""
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
            # (S·(R+C), C, h, w), timestep-major, each item with its own timestep
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
    its final timestep so that every batch has the same shape (one graph when compiled).
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
