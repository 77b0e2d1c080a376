"""A diffusers pipeline unlike the built-in tiny model, as a user's own pipeline would be."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor
from transformers import CLIPTextConfig, CLIPTextModel

from adcli.engine.archs.unet_attention import self_attention_names
from adcli.engine.archs.tiny_unets import tiny_scheduler
from adcli.engine.tiny import tiny_tokenizer

TEXT = 40


def own_sd15_pipeline() -> StableDiffusionPipeline:
    """Unlike ``tiny``: widths 24/48, 3 heads, one layer per block (10 self-attention layers),
    a 40-wide text encoder with 4 heads, another VAE, Euler instead of DDIM; gradients left on."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        unet = UNet2DConditionModel(
            sample_size=8, block_out_channels=(24, 48, 48, 48), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=TEXT, attention_head_dim=3, norm_num_groups=8,
        )
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(12, 24, 24, 24), layers_per_block=1, latent_channels=4, norm_num_groups=4,
        )
        encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=1024, hidden_size=TEXT, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        ))
    scheduler = EulerDiscreteScheduler.from_config(tiny_scheduler().config)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=encoder, tokenizer=tiny_tokenizer(), unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    # a user's choice of processor for one layer: it must come back as the very same object
    name = self_attention_names(unet)[0]
    pipe.unet.set_attn_processor({**unet.attn_processors, name: AttnProcessor()})
    return pipe
