"""Stable Diffusion 1.5: one CLIP ViT-L text encoder (its last hidden state), 512² native.

The published configs are those of ``stable-diffusion-v1-5/stable-diffusion-v1-5``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from adcli.engine.archs.base import Components
from adcli.engine.archs.unet import UNetArchitecture, present

CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              projection_dim=768, hidden_act="quick_gelu")
SD_VAE = dict(
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


class SD15(UNetArchitecture):
    name = "sd15"
    title = "Stable Diffusion 1.5"
    default_model = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    tiny_models = ("tiny", "tiny-sd15")
    pipeline_class = "StableDiffusionPipeline"
    lora_loader_class = "StableDiffusionLoraLoaderMixin"
    text_parts = (("tokenizer", "text_encoder"),)
    text_encoder_classes = ("CLIPTextModel",)
    # Published approximations of a latent pixel's colour (fitted by the community on decoded images).
    preview_factors = (
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    )
    published_configs = {
        "unet": dict(
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
        ),
        "vae": dict(SD_VAE, sample_size=512, scaling_factor=0.18215),
        "text_encoders": [CLIP_L],
    }

    def claims_index(self, model_index: dict) -> bool:
        """A UNet pipeline with one text encoder (the loader's rule: a second one makes SDXL)."""
        return present(model_index, "unet") and not present(model_index, "text_encoder_2")

    def claims_denoiser_config(self, config: dict) -> bool:
        return "down_block_types" in config and config.get("addition_embed_type") != "text_time"

    def claims_checkpoint(self, keys: Collection[str]) -> bool:
        return any(k.startswith("model.diffusion_model.") for k in keys) and any(
            k.startswith("cond_stage_model.transformer.") for k in keys
        )

    def claims_pipe(self, pipe: Any) -> bool:
        unet = getattr(pipe, "unet", None)
        return unet is not None and getattr(pipe, "text_encoder_2", None) is None and (
            unet.config.get("addition_embed_type") != "text_time"
        )

    def _pipeline_extras(self) -> dict:
        return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}

    def build_tiny(self, name: str) -> Components:
        from adcli.engine.archs.tiny_unets import build_tiny_sd15

        return build_tiny_sd15()
