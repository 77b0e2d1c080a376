"""Seeded inputs for one FLUX or SD3 transformer call, and small transformers of the real widths.

The tiny models are 32 wide, narrower than a K-quant block (256 values per row), so a community-
style K-quant GGUF of them would be Q8_0 almost everywhere. ``wide_*`` transformers keep FLUX.1's
head width (128) and SD3's (64) with 256-wide streams and two blocks, so that their attention and
MLP weights take K-quants as a real file's do.
"""

from __future__ import annotations

import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

from adcli.engine.archs.flow import flux_image_ids

GRID = (4, 4)  # image tokens (FLUX: packed 2×2 latents; SD3: patches)
TEXT_TOKENS = 8


def wide_flux_transformer(seed: int = 3) -> FluxTransformer2DModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=128,
            num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
            axes_dims_rope=(16, 56, 56),
        ).eval().requires_grad_(False)


def wide_sd3_transformer(seed: int = 3) -> SD3Transformer2DModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SD3Transformer2DModel(
            sample_size=32, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=64,
            num_attention_heads=4, joint_attention_dim=64, caption_projection_dim=256, pooled_projection_dim=64,
            out_channels=16, pos_embed_max_size=96, dual_attention_layers=(0,), qk_norm="rms_norm",
        ).eval().requires_grad_(False)


def flux_inputs(transformer, seed: int = 0, dtype=torch.float32) -> dict:
    """Keyword arguments of one FLUX call: packed latents (1, 16, 64), T5 tokens, CLIP vector, ids."""
    config = transformer.config
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "hidden_states": torch.randn(1, GRID[0] * GRID[1], config.in_channels, generator=generator),
        "encoder_hidden_states": torch.randn(1, TEXT_TOKENS, config.joint_attention_dim, generator=generator),
        "pooled_projections": torch.randn(1, config.pooled_projection_dim, generator=generator),
        "timestep": torch.tensor([0.6]),
        "img_ids": flux_image_ids(GRID, torch.device("cpu"), torch.float32),
        "txt_ids": torch.zeros(TEXT_TOKENS, 3),
        "guidance": torch.tensor([3.5]) if config.guidance_embeds else None,
    }
    return {k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() and "ids" not in k else v
            for k, v in inputs.items()}


def sd3_inputs(transformer, seed: int = 0, dtype=torch.float32) -> dict:
    """Keyword arguments of one SD3 call: latents (1, 16, 8, 8), CLIP ‖ T5 tokens, pooled CLIPs."""
    config = transformer.config
    generator = torch.Generator().manual_seed(seed)
    patch = config.patch_size
    return {
        "hidden_states": torch.randn(1, config.in_channels, GRID[0] * patch, GRID[1] * patch, generator=generator).to(dtype),
        "encoder_hidden_states": torch.randn(1, TEXT_TOKENS, config.joint_attention_dim, generator=generator).to(dtype),
        "pooled_projections": torch.randn(1, config.pooled_projection_dim, generator=generator).to(dtype),
        "timestep": torch.tensor([600.0]),
    }


def inputs_for(transformer, seed: int = 0, dtype=torch.float32) -> dict:
    is_flux = type(transformer).__name__.startswith("Flux")
    return (flux_inputs if is_flux else sd3_inputs)(transformer, seed, dtype)


@torch.no_grad()
def run(transformer, inputs: dict) -> torch.Tensor:
    return transformer(**inputs, return_dict=False)[0]


def input_gradient(transformer, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, d(output · fixed weights)/d(input latent)): the gradient AD needs, w.r.t. the latent only."""
    latent = inputs["hidden_states"].detach().clone().requires_grad_(True)
    out = transformer(**(inputs | {"hidden_states": latent}), return_dict=False)[0]
    weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape).to(out.dtype)
    (out * weights).sum().backward()
    return out.detach(), latent.grad
