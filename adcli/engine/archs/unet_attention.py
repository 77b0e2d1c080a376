"""The UNet's self-attention layers and their capture, through diffusers' attention-processor API.

Layers are the ``attn1`` modules (self-attention; ``attn2`` is cross-attention and never used) in
forward order: down blocks, mid block, up blocks. A :class:`CaptureProcessor` computes attention
exactly like diffusers' default processor and records q, k, v and the output of its layer into
the run's :class:`~adcli.engine.attention.FeatureStore`. :class:`Capture` (made once, installed as
often as a run needs) swaps only those layers' processors and restores them in ``finally``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

from adcli.engine.attention import FeaturesComplete, FeatureStore, LayerFeatures

_SECTION_RANK = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}


def _forward_rank(name: str) -> tuple:
    section = name.split(".", 1)[0]
    numbers = tuple(int(n) for n in re.findall(r"\.(\d+)\.", f".{name}."))
    return (_SECTION_RANK.get(section, 3), numbers)


def self_attention_names(unet: torch.nn.Module) -> list[str]:
    """Names of the UNet's self-attention (attn1) processors, in forward order."""
    names = [name for name in unet.attn_processors if name.endswith("attn1.processor")]
    return sorted(names, key=_forward_rank)


def _token_grid(tokens: int, hint: tuple[int, int] | None) -> tuple[int, int]:
    """The (height, width) grid of a layer with ``tokens`` tokens, from the latent's aspect."""
    if hint is None:
        side = int(round(tokens**0.5))
        return (side, tokens // side) if side * (tokens // side) == tokens else (1, tokens)
    height, width = hint
    while height * width > tokens:
        height, width = (height + 1) // 2, (width + 1) // 2
    if height * width != tokens:
        return (1, tokens)
    return (height, width)


class CaptureProcessor:
    """diffusers' scaled-dot-product attention, recording q, k, v and output for one layer."""

    def __init__(self, position: int, store: FeatureStore):
        self.position = position
        self.store = store

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        batch, tokens, _ = hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, tokens, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        # (B, N, C) → (B, H, N, D)
        q = attn.to_q(hidden_states)
        k = attn.to_k(context)
        v = attn.to_v(context)
        head_dim = k.shape[-1] // attn.heads
        q, k, v = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (q, k, v))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)

        grid = (height, width) if input_ndim == 4 else _token_grid(tokens, self.store.grid_hint)
        self.store.layers[self.position] = LayerFeatures(q=q, k=k, v=v, out=out, grid=grid)
        if self.store.stop_after == self.position:
            raise FeaturesComplete

        hidden_states = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(q.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def self_attention_layers(unet: torch.nn.Module) -> list[Attention]:
    """The UNet's self-attention (attn1) modules, in forward order (a compiled UNet's own modules)."""
    root = getattr(unet, "_orig_mod", unet)
    return [root.get_submodule(name.removesuffix(".processor")) for name in self_attention_names(unet)]


class Capture:
    """Capture processors for the layers at ``positions``, made once and installed as often as a
    run needs. Installing swaps only those layers' processors and restores them in ``finally``:
    ``unet.set_attn_processor`` walks the whole model, ~25 ms per swap on the tiny model, which
    MultiDiffusion would pay twice per window batch and step."""

    def __init__(self, unet: torch.nn.Module, positions: Sequence[int], store: FeatureStore):
        layers = self_attention_layers(unet)
        self.unet = unet
        self.store = store
        self.processors = [(layers[position], CaptureProcessor(position, store)) for position in positions]

    @contextmanager
    def installed(self) -> Iterator[FeatureStore]:
        store = self.store

        def remember_latent_grid(module, args, kwargs):
            sample = args[0] if args else kwargs["sample"]
            store.grid_hint = tuple(sample.shape[-2:])

        saved = [(layer, layer.processor) for layer, _ in self.processors]
        hook = self.unet.register_forward_pre_hook(remember_latent_grid, with_kwargs=True)
        try:
            for layer, processor in self.processors:
                layer.set_processor(processor)
            yield store
        finally:
            hook.remove()
            for layer, original in saved:
                layer.set_processor(original)


def capture(unet: torch.nn.Module, positions: Sequence[int], store: FeatureStore) -> AbstractContextManager[FeatureStore]:
    """Install capture processors on the self-attention layers at ``positions``; restore on exit."""
    return Capture(unet, positions, store).installed()
