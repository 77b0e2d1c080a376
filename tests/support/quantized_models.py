"""Model folders and GGUF files for the quantized-weights tests, written from tiny pipelines.

The tiny models are 32 wide: a K-quant block (256 values of a row) does not fit their rows, so a
community-style Q4_K file of them is Q8_0 throughout. ``wide_pipeline`` swaps in a transformer of
the real head widths (FLUX.1's 128, SD3's 64) and 256-wide rows, with two blocks, so that its
attention and MLP weights take the K-quant as a real file's do, while the tiny text encoders, VAE
and scheduler stay. Its AD layers are few: pass ``--layers=-1``.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import torch
from diffusers import SD3Transformer2DModel

from adcli.engine.archs.tiny_transformers import CLIP_G_WIDTH, CLIP_WIDTH, SD3_T5_WIDTH, tiny_flux_pipeline, tiny_sd3_pipeline
from tests.support.gguf_files import write_gguf
from tests.support.transformer_checkpoints import flux_to_original, sd3_to_original
from tests.support.transformer_inputs import wide_flux_transformer

Q = gguf.GGMLQuantizationType
TO_ORIGINAL = {"flux": flux_to_original, "sd3": sd3_to_original}


def wide_sd3_for_tiny_encoders(seed: int = 3) -> SD3Transformer2DModel:
    """SD3.5 Medium's head width (64) × 4 heads, two joint blocks (dual attention in the first), reading
    the tiny SD3's text widths (CLIPs 32 + 48 pooled, T5 96)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SD3Transformer2DModel(
            sample_size=32, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=64, num_attention_heads=4,
            joint_attention_dim=SD3_T5_WIDTH, caption_projection_dim=256, pooled_projection_dim=CLIP_WIDTH + CLIP_G_WIDTH,
            out_channels=16, pos_embed_max_size=96, dual_attention_layers=(0,), qk_norm="rms_norm",
        ).eval().requires_grad_(False)


def wide_pipeline(arch: str):
    """The tiny FLUX.1-dev or SD3.5 pipeline with a 256-wide, two-block transformer."""
    if arch == "flux":
        pipe = tiny_flux_pipeline()
        pipe.transformer = wide_flux_transformer()
    else:
        pipe = tiny_sd3_pipeline()
        pipe.transformer = wide_sd3_for_tiny_encoders()
    pipe.register_modules(transformer=pipe.transformer)
    return pipe


def save_wide(arch: str, folder: Path):
    """The wide pipeline saved as a diffusers folder; returns the pipeline."""
    pipe = wide_pipeline(arch)
    pipe.save_pretrained(folder)
    return pipe


def write_transformer_gguf(transformer: torch.nn.Module, arch: str, path: Path, qtype) -> dict:
    """``transformer`` as a community GGUF file of ``qtype`` (original key layout); returns each tensor's type."""
    return write_gguf(TO_ORIGINAL[arch](transformer.state_dict()), path, arch, qtype)
