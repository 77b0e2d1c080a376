"""Black Forest Labs' FLUX key layout → diffusers' ``FluxTransformer2DModel`` keys, at any width.

diffusers converts BFL files itself (``convert_flux_transformer_checkpoint_to_diffusers``), but
splits each single block's ``linear1`` with FLUX.1's sizes written in (3072 wide, 4× MLP), so a
narrower transformer — the tiny test models, or a pruned FLUX — fails there. This conversion reads
the widths from the tensors (``img_in`` rows; ``linear1`` rows − 3 × width) and is otherwise the
same renaming; a test checks it equal to diffusers' on a FLUX.1-shaped checkpoint. It works on
GGUF tensors too: splitting and concatenating along the output rows keeps their quantized blocks
whole (each row is quantized on its own).
"""

from __future__ import annotations

import re

import torch

from adcli.errors import ModelLoadError

_TOP = {
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "txt_in": "context_embedder",
    "img_in": "x_embedder",
    "final_layer.linear": "proj_out",
}
_DOUBLE = {
    "img_mod.lin": "norm1.linear",
    "txt_mod.lin": "norm1_context.linear",
    "img_mlp.0": "ff.net.0.proj",
    "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj",
    "txt_mlp.2": "ff_context.net.2",
    "img_attn.proj": "attn.to_out.0",
    "txt_attn.proj": "attn.to_add_out",
}
_DOUBLE_NORMS = {
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight",
    "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
    "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
}
_DOUBLE_QKV = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
               "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}
_SINGLE = {"modulation.lin": "norm.linear", "linear2": "proj_out"}
_SINGLE_NORMS = {"norm.query_norm.scale": "attn.norm_q.weight", "norm.key_norm.scale": "attn.norm_k.weight"}
_SINGLE_LINEAR1 = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
_BLOCK_KEY = re.compile(r"(double_blocks|single_blocks)\.(\d+)\.(.+)")
_PREFIX = "model.diffusion_model."


def _swap_halves(weight: torch.Tensor) -> torch.Tensor:
    """BFL's final AdaLN gives [shift; scale], diffusers' [scale; shift]."""
    shift, scale = weight.chunk(2, dim=0)
    return torch.cat([scale, shift], dim=0)


def _param_split(name: str) -> tuple[str, str]:
    module, _, param = name.rpartition(".")
    return module, param


def _convert_block(kind: str, index: int, rest: str, value: torch.Tensor, width: int, out: dict) -> bool:
    """Place one block tensor into ``out``; False when the name is not one FLUX has."""
    new = f"{'transformer_blocks' if kind == 'double_blocks' else 'single_transformer_blocks'}.{index}."
    norms, renames = (_DOUBLE_NORMS, _DOUBLE) if kind == "double_blocks" else (_SINGLE_NORMS, _SINGLE)
    if rest in norms:
        out[new + norms[rest]] = value
        return True
    module, param = _param_split(rest)
    if module in renames:
        out[f"{new}{renames[module]}.{param}"] = value
    elif kind == "double_blocks" and module in _DOUBLE_QKV:
        for target, part in zip(_DOUBLE_QKV[module], torch.chunk(value, 3, dim=0), strict=True):
            out[f"{new}{target}.{param}"] = part
    elif kind == "single_blocks" and module == "linear1":
        sizes = (width, width, width, value.shape[0] - 3 * width)  # q, k, v, then the MLP's input rows
        for target, part in zip(_SINGLE_LINEAR1, torch.split(value, sizes, dim=0), strict=True):
            out[f"{new}{target}.{param}"] = part
    else:
        return False
    return True


def flux_original_to_diffusers(checkpoint: dict[str, torch.Tensor], name: str = "checkpoint") -> dict[str, torch.Tensor]:
    """A BFL-layout FLUX state dict (``double_blocks``/``single_blocks``; a full checkpoint's
    ``model.diffusion_model.`` tensors are taken, the rest — text encoders, VAE — left out) as
    ``FluxTransformer2DModel`` keys. A tensor FLUX has no place for is a one-line error naming it."""
    if any(key.startswith(_PREFIX) for key in checkpoint):
        checkpoint = {key[len(_PREFIX):]: value for key, value in checkpoint.items() if key.startswith(_PREFIX)}
    if "img_in.weight" not in checkpoint:
        raise ModelLoadError(f"{name} has no img_in.weight: it is not a FLUX transformer in the BFL layout")
    width = checkpoint["img_in.weight"].shape[0]  # (inner, 64): quantized rows keep their count
    out: dict[str, torch.Tensor] = {}
    for key, value in checkpoint.items():
        module, param = _param_split(key)
        if module == "final_layer.adaLN_modulation.1":
            out[f"norm_out.linear.{param}"] = _swap_halves(value)
            continue
        if module in _TOP:
            out[f"{_TOP[module]}.{param}"] = value
            continue
        match = _BLOCK_KEY.fullmatch(key)
        if match is None or not _convert_block(match[1], int(match[2]), match[3], value, width, out):
            raise ModelLoadError(f"{name} has a tensor FLUX has no place for: {key} (another model's file?)")
    return out
