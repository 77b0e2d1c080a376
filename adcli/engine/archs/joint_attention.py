"""Attention capture for the joint-attention transformers (FLUX.1, SD3/SD3.5), through diffusers'
attention-processor API.

A capture processor computes exactly what the module's default processor computes (FLUX:
``FluxAttnProcessor`` on the native SDPA backend; SD3: ``JointAttnProcessor2_0``) and records,
for the layers it was asked for, q, k, v over the *joint* sequence — after the per-head QK
RMS-norm and, on FLUX, after RoPE — and the attention output before the output projection, all
``(B, H, N, D)``, into the run's :class:`~adcli.engine.attention.FeatureStore`. It also records
where the text tokens sit and the image token grid, which a mask or a content loss needs.

Layers are the attention modules in forward order:
- FLUX.1: the 19 double-stream blocks' ``attn`` ([text, image], text first), then the 38
  single-stream blocks' ``attn`` (the same joint sequence, concatenated by the block): 57.
- SD3/SD3.5: each joint block's ``attn`` ([image, text], image first; no RoPE — positions are
  in the patch embedding), and right after it, in SD3.5 Medium's blocks 0–12, the image-only
  ``attn2``, counted as a layer of its own: Medium has 24 + 13 = 37, Large 38, SD3 Medium 24.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb

from adcli.engine.attention import FeaturesComplete, FeatureStore, LayerFeatures
from adcli.errors import AdcliError


@dataclass
class JointLayerFeatures(LayerFeatures):
    """One joint-attention layer's q, k, v, out ``(B, H, N, D)`` over the whole sequence.

    ``text`` and ``image`` are the token slices of the sequence (FLUX: text first; SD3: image
    first; an image-only layer has an empty ``text``); ``grid`` is the image tokens' (h, w).
    """

    text: slice
    image: slice


@dataclass
class SequenceLayout:
    """What the current transformer pass is made of, read by a pre-hook before the blocks run:
    the image token grid (h, w) and, on FLUX, the number of text tokens (single blocks see only
    the concatenated sequence)."""

    grid: tuple[int, int] | None = None
    text_tokens: int = 0


def _unwrapped(transformer: torch.nn.Module) -> torch.nn.Module:
    return getattr(transformer, "_orig_mod", transformer)  # a compiled model's own modules


def flux_attention_layers(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    """FLUX's attention modules in forward order: double blocks, then single blocks (19 + 38 = 57)."""
    root = _unwrapped(transformer)
    return [block.attn for block in root.transformer_blocks] + [block.attn for block in root.single_transformer_blocks]


def sd3_attention_layers(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    """SD3's attention modules in forward order: each block's joint ``attn``, then its ``attn2`` if any."""
    layers = []
    for block in _unwrapped(transformer).transformer_blocks:
        layers.append(block.attn)
        if getattr(block, "attn2", None) is not None:
            layers.append(block.attn2)
    return layers


# Default AD layers, as indices into the lists above (negative: from the end).
# FLUX.1: the last 7 single-stream blocks — the paper's FLUX code distils layers "50–57" (50..56).
FLUX_DEFAULT_LAYERS = tuple(range(-7, 0))
# SD3/SD3.5 (no reference code): the same rule, the last 7 joint attentions — Medium's blocks 17–23,
# Large's 31–37. Negative indices pick the same blocks on both, since Medium's image-only attn2 sits in
# blocks 0–12 only; those early blocks shape the layout (SD3.5's skip-layer guidance acts on 7–9), while
# AD wants appearance. Unvalidated on real weights: the first GPU run should sweep it.
SD3_DEFAULT_LAYERS = tuple(range(-7, 0))


def layer_names(transformer: torch.nn.Module, layers: Sequence[torch.nn.Module]) -> list[str]:
    """The module names of ``layers`` (e.g. ``single_transformer_blocks.37.attn``), for messages and ``info``."""
    names = {id(module): name for name, module in _unwrapped(transformer).named_modules()}
    return [names[id(layer)] for layer in layers]


def resolve_layers(count: int, indices: Sequence[int]) -> list[int]:
    """Layer indices (negative from the end) as sorted positions among ``count`` layers, failing loudly."""
    resolved = set()
    for index in indices:
        position = index + count if index < 0 else index
        if not 0 <= position < count:
            raise AdcliError(
                f"layer {index} does not exist: this model has {count} attention layers "
                f"(use 0..{count - 1}, or -1 for the last)"
            )
        resolved.add(position)
    if not resolved:
        raise AdcliError("no attention layers selected: give at least one")
    return sorted(resolved)


def _projections(attn, hidden_states: torch.Tensor, context: torch.Tensor | None) -> tuple:
    """(q, k, v, context q, k, v) as the module's linear layers give them, each (B, N, H·D); fused or not."""
    if getattr(attn, "fused_projections", False):
        q, k, v = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        if context is None:
            return q, k, v, None, None, None
        return (q, k, v, *attn.to_added_qkv(context).chunk(3, dim=-1))
    q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
    if context is None:
        return q, k, v, None, None, None
    return q, k, v, attn.add_q_proj(context), attn.add_k_proj(context), attn.add_v_proj(context)


def _grid_for(tokens: int, layout: SequenceLayout) -> tuple[int, int]:
    grid = layout.grid
    return grid if grid is not None and grid[0] * grid[1] == tokens else (1, tokens)


class _Recorder:
    """Records one layer into the store and stops the pass after the last wanted layer."""

    def __init__(self, position: int, store: FeatureStore, layout: SequenceLayout):
        self.position = position
        self.store = store
        self.layout = layout

    def record(self, q, k, v, out, text: slice, image: slice, image_tokens: int) -> None:
        grid = _grid_for(image_tokens, self.layout)
        self.store.layers[self.position] = JointLayerFeatures(q, k, v, out, grid=grid, text=text, image=image)
        if self.store.stop_after == self.position:
            raise FeaturesComplete


class FluxCaptureProcessor(_Recorder):
    """``FluxAttnProcessor`` (native SDPA) for a double- or single-stream block, recording its layer.

    Double blocks get the image stream as ``hidden_states`` and the text stream apart; single
    blocks get the joint [text, image] sequence, whose text length the layout holds.
    """

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        q, k, v, cq, ck, cv = _projections(attn, hidden_states, encoder_hidden_states)
        # (B, N, H·D) → (B, N, H, D): FLUX normalises and rotates with the sequence on dim 1
        q, k, v = (x.unflatten(-1, (-1, attn.head_dim)) for x in (q, k, v))
        q, k = attn.norm_q(q), attn.norm_k(k)
        if encoder_hidden_states is not None:
            cq, ck, cv = (x.unflatten(-1, (-1, attn.head_dim)) for x in (cq, ck, cv))
            cq, ck = attn.norm_added_q(cq), attn.norm_added_k(ck)
            q, k, v = torch.cat([cq, q], dim=1), torch.cat([ck, k], dim=1), torch.cat([cv, v], dim=1)
            text_tokens = encoder_hidden_states.shape[1]
        else:
            text_tokens = self.layout.text_tokens
        if image_rotary_emb is not None:
            q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
            k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, T + N, D)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        tokens = q.shape[2]
        self.record(q, k, v, out, slice(0, text_tokens), slice(text_tokens, tokens), tokens - text_tokens)

        hidden_states = out.transpose(1, 2).flatten(2, 3).to(q.dtype)  # (B, T + N, H·D)
        if encoder_hidden_states is None:
            return hidden_states
        text, image = hidden_states.split_with_sizes([text_tokens, tokens - text_tokens], dim=1)
        image = attn.to_out[1](attn.to_out[0](image.contiguous()))
        return image, attn.to_add_out(text.contiguous())


class SD3CaptureProcessor(_Recorder):
    """``JointAttnProcessor2_0`` for a joint block's ``attn`` ([image, text]) or an image-only ``attn2``."""

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *args,
        **kwargs,
    ):
        batch, image_tokens = hidden_states.shape[:2]
        q, k, v, cq, ck, cv = _projections(attn, hidden_states, encoder_hidden_states)
        head_dim = k.shape[-1] // attn.heads
        # (B, N, H·D) → (B, H, N, D)
        q, k, v = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (q, k, v))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if encoder_hidden_states is not None:
            cq, ck, cv = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (cq, ck, cv))
            if attn.norm_added_q is not None:
                cq = attn.norm_added_q(cq)
            if attn.norm_added_k is not None:
                ck = attn.norm_added_k(ck)
            q, k, v = torch.cat([q, cq], dim=2), torch.cat([k, ck], dim=2), torch.cat([v, cv], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
        tokens = q.shape[2]
        self.record(q, k, v, out, slice(image_tokens, tokens), slice(0, image_tokens), image_tokens)

        hidden_states = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(q.dtype)
        image = attn.to_out[1](attn.to_out[0](hidden_states[:, :image_tokens]))
        if encoder_hidden_states is None:
            return image
        text = hidden_states[:, image_tokens:]
        return image, (text if attn.context_pre_only else attn.to_add_out(text))


class JointCapture:
    """Capture processors for the layers at ``positions``, made once and installed as often as a run
    needs; installing swaps only those modules' processors (``set_processor``) and restores them in
    ``finally``, with a pre-hook on the transformer that reads the pass's :class:`SequenceLayout`."""

    processor_class: type[_Recorder]

    def __init__(self, transformer: torch.nn.Module, positions: Sequence[int], store: FeatureStore):
        layers = self.layers(transformer)
        self.transformer = transformer
        self.store = store
        self.layout = SequenceLayout()
        self.signature = inspect.signature(_unwrapped(transformer).forward)
        self.processors = [
            (layers[position], self.processor_class(position, store, self.layout)) for position in positions
        ]

    @staticmethod
    def layers(transformer: torch.nn.Module) -> list[torch.nn.Module]:
        raise NotImplementedError

    def read_layout(self, inputs: dict) -> None:
        raise NotImplementedError

    @contextmanager
    def installed(self) -> Iterator[FeatureStore]:
        def remember_layout(module, args, kwargs):
            self.read_layout(self.signature.bind_partial(*args, **kwargs).arguments)
            self.store.grid_hint = self.layout.grid

        saved = [(layer, layer.processor) for layer, _ in self.processors]
        hook = self.transformer.register_forward_pre_hook(remember_layout, with_kwargs=True)
        try:
            for layer, processor in self.processors:
                layer.set_processor(processor)
            yield self.store
        finally:
            hook.remove()
            for layer, original in saved:
                layer.set_processor(original)


class FluxCapture(JointCapture):
    """:class:`JointCapture` for ``FluxTransformer2DModel``: grid from ``img_ids``, text count from ``txt_ids``."""

    processor_class = FluxCaptureProcessor
    layers = staticmethod(flux_attention_layers)

    def __init__(self, transformer: torch.nn.Module, positions: Sequence[int], store: FeatureStore):
        super().__init__(transformer, positions, store)
        self._ids: torch.Tensor | None = None

    def read_layout(self, inputs: dict) -> None:
        txt_ids, img_ids = inputs["txt_ids"], inputs["img_ids"]
        self.layout.text_tokens = txt_ids.shape[-2]
        if img_ids is not self._ids:  # the grid costs a device sync: read once per ids tensor
            self._ids = img_ids
            ids = img_ids.reshape(-1, img_ids.shape[-1])
            self.layout.grid = (int(ids[:, 1].unique().numel()), int(ids[:, 2].unique().numel()))


class SD3Capture(JointCapture):
    """:class:`JointCapture` for ``SD3Transformer2DModel``: grid from the latent's size and the patch size."""

    processor_class = SD3CaptureProcessor
    layers = staticmethod(sd3_attention_layers)

    def read_layout(self, inputs: dict) -> None:
        patch = _unwrapped(self.transformer).config.patch_size
        height, width = inputs["hidden_states"].shape[-2:]
        self.layout.grid = (height // patch, width // patch)
        self.layout.text_tokens = inputs["encoder_hidden_states"].shape[1]

