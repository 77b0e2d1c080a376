"""Write diffusers FLUX/SD3 transformers back in the original single-file layouts, for test files.

Real FLUX.1 files come in Black Forest Labs' layout and SD3/SD3.5 files in Stability's; diffusers'
``from_single_file`` converts from those (``convert_flux_transformer_checkpoint_to_diffusers``,
``convert_sd3_transformer_checkpoint_to_diffusers``). These are the inverses, written from those
converters: fused q/k/v (``qkv``), FLUX single blocks' ``linear1`` = [q; k; v; mlp] and ``linear2``,
the QK-norm ``scale`` names, and the final (and SD3's last context) AdaLN with shift and scale
swapped. Every diffusers key must be used: a key left over is an error, so a missed tensor
cannot pass unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

FULL_CHECKPOINT_PREFIX = "model.diffusion_model."


def _swap_halves(weight: torch.Tensor) -> torch.Tensor:
    """[scale; shift] ↔ [shift; scale] along the rows (its own inverse)."""
    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


class _Writer:
    def __init__(self, state_dict: dict[str, torch.Tensor]):
        self.source = dict(state_dict)
        self.out: dict[str, torch.Tensor] = {}

    def take(self, key: str) -> torch.Tensor:
        return self.source.pop(key)

    def move(self, new: str, old: str, params=("weight", "bias")) -> None:
        for param in params:
            self.out[f"{new}.{param}"] = self.take(f"{old}.{param}")

    def fuse(self, new: str, olds: list[str]) -> None:
        for param in ("weight", "bias"):
            self.out[f"{new}.{param}"] = torch.cat([self.take(f"{old}.{param}") for old in olds], dim=0)

    def swapped(self, new: str, old: str) -> None:
        for param in ("weight", "bias"):
            self.out[f"{new}.{param}"] = _swap_halves(self.take(f"{old}.{param}"))

    def done(self, prefix: str) -> dict[str, torch.Tensor]:
        if self.source:
            raise KeyError(f"diffusers keys with no original name: {sorted(self.source)[:5]}")
        return {prefix + key: value.contiguous() for key, value in self.out.items()}


def flux_to_original(state_dict: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """A ``FluxTransformer2DModel`` state dict → BFL's FLUX layout (``prefix``: e.g. ``model.diffusion_model.``)."""
    w = _Writer(state_dict)
    w.move("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1")
    w.move("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2")
    w.move("vector_in.in_layer", "time_text_embed.text_embedder.linear_1")
    w.move("vector_in.out_layer", "time_text_embed.text_embedder.linear_2")
    if "time_text_embed.guidance_embedder.linear_1.weight" in w.source:  # FLUX.1-dev
        w.move("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1")
        w.move("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2")
    w.move("txt_in", "context_embedder")
    w.move("img_in", "x_embedder")
    doubles = {int(k.split(".")[1]) for k in w.source if k.startswith("transformer_blocks.")}
    for i in sorted(doubles):
        new, old = f"double_blocks.{i}", f"transformer_blocks.{i}"
        w.move(f"{new}.img_mod.lin", f"{old}.norm1.linear")
        w.move(f"{new}.txt_mod.lin", f"{old}.norm1_context.linear")
        w.fuse(f"{new}.img_attn.qkv", [f"{old}.attn.to_q", f"{old}.attn.to_k", f"{old}.attn.to_v"])
        w.fuse(f"{new}.txt_attn.qkv", [f"{old}.attn.add_q_proj", f"{old}.attn.add_k_proj", f"{old}.attn.add_v_proj"])
        w.out[f"{new}.img_attn.norm.query_norm.scale"] = w.take(f"{old}.attn.norm_q.weight")
        w.out[f"{new}.img_attn.norm.key_norm.scale"] = w.take(f"{old}.attn.norm_k.weight")
        w.out[f"{new}.txt_attn.norm.query_norm.scale"] = w.take(f"{old}.attn.norm_added_q.weight")
        w.out[f"{new}.txt_attn.norm.key_norm.scale"] = w.take(f"{old}.attn.norm_added_k.weight")
        w.move(f"{new}.img_mlp.0", f"{old}.ff.net.0.proj")
        w.move(f"{new}.img_mlp.2", f"{old}.ff.net.2")
        w.move(f"{new}.txt_mlp.0", f"{old}.ff_context.net.0.proj")
        w.move(f"{new}.txt_mlp.2", f"{old}.ff_context.net.2")
        w.move(f"{new}.img_attn.proj", f"{old}.attn.to_out.0")
        w.move(f"{new}.txt_attn.proj", f"{old}.attn.to_add_out")
    singles = {int(k.split(".")[1]) for k in w.source if k.startswith("single_transformer_blocks.")}
    for i in sorted(singles):
        new, old = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        w.move(f"{new}.modulation.lin", f"{old}.norm.linear")
        w.fuse(f"{new}.linear1", [f"{old}.attn.to_q", f"{old}.attn.to_k", f"{old}.attn.to_v", f"{old}.proj_mlp"])
        w.out[f"{new}.norm.query_norm.scale"] = w.take(f"{old}.attn.norm_q.weight")
        w.out[f"{new}.norm.key_norm.scale"] = w.take(f"{old}.attn.norm_k.weight")
        w.move(f"{new}.linear2", f"{old}.proj_out")
    w.move("final_layer.linear", "proj_out")
    w.swapped("final_layer.adaLN_modulation.1", "norm_out.linear")
    return w.done(prefix)


def sd3_to_original(state_dict: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """An ``SD3Transformer2DModel`` state dict → Stability's SD3 layout (``joint_blocks.N.x_block…``)."""
    w = _Writer(state_dict)
    w.out["pos_embed"] = w.take("pos_embed.pos_embed")
    w.move("x_embedder.proj", "pos_embed.proj")
    w.move("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1")
    w.move("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2")
    w.move("context_embedder", "context_embedder")
    w.move("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1")
    w.move("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2")
    blocks = sorted({int(k.split(".")[1]) for k in w.source if k.startswith("transformer_blocks.")})
    for i in blocks:
        x, c, old = f"joint_blocks.{i}.x_block", f"joint_blocks.{i}.context_block", f"transformer_blocks.{i}"
        last = i == blocks[-1]
        w.fuse(f"{x}.attn.qkv", [f"{old}.attn.to_q", f"{old}.attn.to_k", f"{old}.attn.to_v"])
        w.fuse(f"{c}.attn.qkv", [f"{old}.attn.add_q_proj", f"{old}.attn.add_k_proj", f"{old}.attn.add_v_proj"])
        if f"{old}.attn.norm_q.weight" in w.source:  # SD3.5's QK RMS-norm
            w.out[f"{x}.attn.ln_q.weight"] = w.take(f"{old}.attn.norm_q.weight")
            w.out[f"{x}.attn.ln_k.weight"] = w.take(f"{old}.attn.norm_k.weight")
            w.out[f"{c}.attn.ln_q.weight"] = w.take(f"{old}.attn.norm_added_q.weight")
            w.out[f"{c}.attn.ln_k.weight"] = w.take(f"{old}.attn.norm_added_k.weight")
        w.move(f"{x}.attn.proj", f"{old}.attn.to_out.0")
        if not last:
            w.move(f"{c}.attn.proj", f"{old}.attn.to_add_out")
        if f"{old}.attn2.to_q.weight" in w.source:  # SD3.5 Medium's image-only attention
            w.fuse(f"{x}.attn2.qkv", [f"{old}.attn2.to_q", f"{old}.attn2.to_k", f"{old}.attn2.to_v"])
            if f"{old}.attn2.norm_q.weight" in w.source:
                w.out[f"{x}.attn2.ln_q.weight"] = w.take(f"{old}.attn2.norm_q.weight")
                w.out[f"{x}.attn2.ln_k.weight"] = w.take(f"{old}.attn2.norm_k.weight")
            w.move(f"{x}.attn2.proj", f"{old}.attn2.to_out.0")
        w.move(f"{x}.adaLN_modulation.1", f"{old}.norm1.linear")
        if last:  # a context_pre_only block's AdaLayerNormContinuous: [scale; shift] in diffusers
            w.swapped(f"{c}.adaLN_modulation.1", f"{old}.norm1_context.linear")
        else:
            w.move(f"{c}.adaLN_modulation.1", f"{old}.norm1_context.linear")
        w.move(f"{x}.mlp.fc1", f"{old}.ff.net.0.proj")
        w.move(f"{x}.mlp.fc2", f"{old}.ff.net.2")
        if not last:
            w.move(f"{c}.mlp.fc1", f"{old}.ff_context.net.0.proj")
            w.move(f"{c}.mlp.fc2", f"{old}.ff_context.net.2")
    w.move("final_layer.linear", "proj_out")
    w.swapped("final_layer.adaLN_modulation.1", "norm_out.linear")
    return w.done(prefix)


def save_original(transformer: torch.nn.Module, path: Path, prefix: str = "") -> Path:
    """``transformer`` (FLUX or SD3, diffusers) saved as a ``.safetensors`` file in its original layout."""
    state_dict = {k: v.detach().cpu() for k, v in transformer.state_dict().items()}
    is_flux = type(transformer).__name__.startswith("Flux")
    save_file((flux_to_original if is_flux else sd3_to_original)(state_dict, prefix), str(path))
    return Path(path)


def save_diffusers_layout(transformer: torch.nn.Module, path: Path, prefix: str = "") -> Path:
    """``transformer`` saved as one ``.safetensors`` file with diffusers' own keys."""
    state_dict = {prefix + k: v.detach().cpu().contiguous() for k, v in transformer.state_dict().items()}
    save_file(state_dict, str(path))
    return Path(path)
