"""Tiny random-weight SD1.5 and SDXL UNets (and a ControlNet), built in code for tests, CI and demos.

They keep the real block layouts (SD1.5: 16 self-attention layers, SDXL: 70) so that layer
selection, conditioning and every code path behave as with the real weights; only the widths
shrink. Their pictures are noise: real results need the real Stable Diffusion weights.
"""

from __future__ import annotations

import torch
from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from adcli.engine.tiny import TEXT_WIDTH, TEXT_WIDTH_2, TINY_SEED, frozen, text_config, tiny_tokenizer, tiny_vae


def tiny_sd15_unet() -> UNet2DConditionModel:
    """SD1.5's block layout (3 cross-attention down blocks, mid, 3 cross-attention up blocks)."""
    return UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=2,
        norm_num_groups=8,
    )


def tiny_sdxl_unet() -> UNet2DConditionModel:
    """SDXL's block layout: transformer depths 1/2/10 → 70 self-attention layers; text_time conditioning."""
    time_embed = 8
    return UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(16, 32, 32),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10),
        cross_attention_dim=TEXT_WIDTH + TEXT_WIDTH_2,
        attention_head_dim=(2, 2, 2),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed,
        projection_class_embeddings_input_dim=TEXT_WIDTH_2 + 6 * time_embed,
        norm_num_groups=8,
    )


def tiny_scheduler() -> DDIMScheduler:
    """The SD1.5/SDXL noise schedule (scaled linear betas, leading spacing, offset 1)."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )


def build_tiny_sd15() -> dict:
    """A tiny SD1.5 pipeline's components, seeded and frozen."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        components = {"vae": tiny_vae(), "scheduler": tiny_scheduler(), "tokenizer": tiny_tokenizer()}
        components["text_encoder"] = CLIPTextModel(text_config(TEXT_WIDTH))
        components["unet"] = tiny_sd15_unet()
    return frozen(components)


def build_tiny_sdxl() -> dict:
    """A tiny SDXL pipeline's components (two text encoders, size/crop conditioning), seeded and frozen."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        components = {"vae": tiny_vae(), "scheduler": tiny_scheduler(), "tokenizer": tiny_tokenizer()}
        components["text_encoder"] = CLIPTextModel(text_config(TEXT_WIDTH))
        components["text_encoder_2"] = CLIPTextModelWithProjection(text_config(TEXT_WIDTH_2))
        components["tokenizer_2"] = tiny_tokenizer()
        components["unet"] = tiny_sdxl_unet()
    return frozen(components)


def build_tiny_controlnet(unet: UNet2DConditionModel) -> ControlNetModel:
    """A ControlNet shaped like ``unet``, seeded; its zero convolutions get small random weights
    so that its residuals are non-zero and their effect is measurable."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 1)
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 8, 8))
        for name, param in controlnet.named_parameters():
            if "zero_conv" in name or "controlnet_down_blocks" in name or "controlnet_mid_block" in name:
                torch.nn.init.normal_(param, std=0.02)
    return controlnet.eval().requires_grad_(False)
