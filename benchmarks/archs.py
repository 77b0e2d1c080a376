"""Full-size SD1.5 and SDXL architectures with random weights, for timing without a download.

The configs are the published ``config.json`` values of ``stable-diffusion-v1-5`` and
``stable-diffusion-xl-base-1.0`` written out here; the cost of a pass does not depend on the weight
values. Text encoders keep their real widths and depths but use the tiny character tokenizer
(every prompt is padded to 77 tokens, so the cost is the same).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from adcli.engine.models import Backend
from adcli.engine.tiny import MAX_TOKENS, tiny_scheduler, tiny_tokenizer

SD15_UNET = dict(
    act_fn="silu",
    attention_head_dim=8,
    block_out_channels=(320, 640, 1280, 1280),
    center_input_sample=False,
    cross_attention_dim=768,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    downsample_padding=1,
    flip_sin_to_cos=True,
    freq_shift=0,
    in_channels=4,
    layers_per_block=2,
    mid_block_scale_factor=1,
    norm_eps=1e-5,
    norm_num_groups=32,
    out_channels=4,
    sample_size=64,
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
)

SDXL_UNET = dict(
    act_fn="silu",
    addition_embed_type="text_time",
    addition_embed_type_num_heads=64,
    addition_time_embed_dim=256,
    attention_head_dim=(5, 10, 20),
    block_out_channels=(320, 640, 1280),
    center_input_sample=False,
    cross_attention_dim=2048,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    downsample_padding=1,
    flip_sin_to_cos=True,
    freq_shift=0,
    in_channels=4,
    layers_per_block=2,
    mid_block_scale_factor=1,
    mid_block_type="UNetMidBlock2DCrossAttn",
    norm_eps=1e-5,
    norm_num_groups=32,
    out_channels=4,
    projection_class_embeddings_input_dim=2816,
    sample_size=128,
    transformer_layers_per_block=(1, 2, 10),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    use_linear_projection=True,
)

_VAE = dict(
    act_fn="silu",
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    in_channels=3,
    latent_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    out_channels=3,
    up_block_types=("UpDecoderBlock2D",) * 4,
)
SD15_VAE = dict(_VAE, sample_size=512, scaling_factor=0.18215)
SDXL_VAE = dict(_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True)

# CLIP ViT-L/14 (SD1.5's encoder and SDXL's first) and OpenCLIP ViT-bigG/14 (SDXL's second).
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              projection_dim=768, hidden_act="quick_gelu")
CLIP_BIG_G = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                  projection_dim=1280, hidden_act="gelu")

ARCHS = {"sd15": (SD15_UNET, SD15_VAE, [CLIP_L]), "sdxl": (SDXL_UNET, SDXL_VAE, [CLIP_L, CLIP_BIG_G])}


def _text_config(widths: dict) -> CLIPTextConfig:
    # Token ids from the tiny tokenizer: 0 starts, 1 ends and pads.
    return CLIPTextConfig(vocab_size=49408, max_position_embeddings=MAX_TOKENS, bos_token_id=0,
                          eos_token_id=1, pad_token_id=1, **widths)


@contextmanager
def _built_on(device: torch.device):
    """Create parameters directly on ``device`` (no CPU copy of billions of random numbers)."""
    with torch.device(device), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        yield


def build_full_backend(arch: str, device: torch.device, dtype: torch.dtype) -> Backend:
    """A :class:`Backend` with the full-size ``arch`` ("sd15" or "sdxl") and random weights.

    Placed the way :func:`adcli.engine.models.load_backend` places real weights: UNet and text
    encoders in ``dtype``, the VAE in fp32, everything frozen and in eval mode.
    """
    unet_config, vae_config, text_configs = ARCHS[arch]
    with _built_on(device):
        unet = UNet2DConditionModel(**unet_config)
        vae = AutoencoderKL(**vae_config)
        encoders = [CLIPTextModel(_text_config(text_configs[0]))]
        if arch == "sdxl":
            encoders.append(CLIPTextModelWithProjection(_text_config(text_configs[1])))
    for module, wanted in [(unet, dtype), (vae, torch.float32)] + [(e, dtype) for e in encoders]:
        module.eval().requires_grad_(False).to(device, wanted)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return Backend(
        arch=arch, unet=unet, vae=vae, scheduler=tiny_scheduler(), tokenizers=[tiny_tokenizer() for _ in encoders],
        text_encoders=encoders, device=device, dtype=dtype, source=f"full-size {arch} (random weights)",
    )


def meta_unet(arch: str) -> UNet2DConditionModel:
    """The full-size UNet on the meta device: shapes only, for counting FLOPs anywhere in a second."""
    with torch.device("meta"):
        return UNet2DConditionModel(**ARCHS[arch][0]).eval().requires_grad_(False)
