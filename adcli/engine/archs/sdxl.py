"""SDXL: two CLIP text encoders (penultimate hidden states side by side, the second's pooled
projection), size and crop conditioning (``time_ids``), 1024² native.

The published configs are those of ``stabilityai/stable-diffusion-xl-base-1.0``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from adcli.engine.archs.base import Components
from adcli.engine.archs.sd15 import CLIP_L, SD_VAE
from adcli.engine.archs.unet import UNetArchitecture, present

if TYPE_CHECKING:
    from adcli.engine.backend import Backend, Conditioning

# OpenCLIP ViT-bigG/14, SDXL's second text encoder.
CLIP_BIG_G = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                  projection_dim=1280, hidden_act="gelu")


class SDXL(UNetArchitecture):
    name = "sdxl"
    title = "SDXL"
    default_model = "stabilityai/stable-diffusion-xl-base-1.0"
    tiny_models = ("tiny-sdxl",)
    pipeline_class = "StableDiffusionXLPipeline"
    lora_loader_class = "StableDiffusionXLLoraLoaderMixin"
    text_parts = (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"))
    text_encoder_classes = ("CLIPTextModel", "CLIPTextModelWithProjection")
    penultimate_hidden_state = True
    preview_factors = (
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    )
    preview_bias = (0.1084, -0.0175, -0.0011)
    published_configs = {
        "unet": dict(
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
        ),
        "vae": dict(SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True),
        "text_encoders": [CLIP_L, CLIP_BIG_G],
    }

    def claims_index(self, model_index: dict) -> bool:
        """A UNet pipeline with a second text encoder."""
        return present(model_index, "unet") and present(model_index, "text_encoder_2")

    def claims_denoiser_config(self, config: dict) -> bool:
        return config.get("addition_embed_type") == "text_time"

    def claims_checkpoint(self, keys: Collection[str]) -> bool:
        return any(k.startswith("model.diffusion_model.") for k in keys) and any(
            k.startswith("conditioner.embedders.1.") for k in keys
        )

    def claims_pipe(self, pipe: Any) -> bool:
        unet = getattr(pipe, "unet", None)
        return unet is not None and (
            getattr(pipe, "text_encoder_2", None) is not None or unet.config.get("addition_embed_type") == "text_time"
        )

    def _pipeline_extras(self) -> dict:
        return {"image_encoder": None, "feature_extractor": None}

    def build_tiny(self, name: str) -> Components:
        from adcli.engine.archs.tiny_unets import build_tiny_sdxl

        return build_tiny_sdxl()

    def added_conditions(self, backend: Backend, conditioning: Conditioning, batch: int, latent_hw: tuple[int, int]) -> dict:
        """The second encoder's pooled text and ``time_ids``: original size, crop (0, 0), target
        size — the image's own size, as the pipeline passes them without a ``original_size``."""
        import torch

        height, width = (side * backend.vae_scale_factor for side in latent_hw)
        time_ids = torch.tensor([height, width, 0, 0, height, width], device=backend.device, dtype=backend.dtype)
        return {"text_embeds": conditioning["pooled"], "time_ids": time_ids.expand(batch, -1)}
