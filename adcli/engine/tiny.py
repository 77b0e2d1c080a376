"""Tiny random-weight models built in code, for tests, CI and demos with no download.

They keep the real block layouts (SD1.5: 16 self-attention layers, SDXL: 70) so that layer
selection, conditioning and every code path behave as with the real weights; only the widths
shrink. Their pictures are noise: real results need the real Stable Diffusion weights.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

TINY_SEED = 0
TEXT_WIDTH = 32
# SDXL's second encoder is wider than its first (1280 vs 768); diffusers tells them apart by width.
TEXT_WIDTH_2 = 48
MAX_TOKENS = 77


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes (as GPT-2/CLIP define them)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def tiny_tokenizer() -> CLIPTokenizer:
    """A character-level CLIP tokenizer: every byte and byte+</w> is a token, no merges."""
    alphabet = _byte_alphabet()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in alphabet + [a + "</w>" for a in alphabet]:
        vocab.setdefault(symbol, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    tokenizer.model_max_length = MAX_TOKENS
    return tokenizer


def _text_config(width: int) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=1024,
        hidden_size=width,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=width,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def tiny_vae() -> AutoencoderKL:
    """Four blocks, so one latent pixel is 8×8 image pixels, as in the real SD VAE."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.18215,
    )


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


def build_tiny_components(arch: str) -> dict:
    """All components of a tiny pipeline (``arch`` is ``"sd15"`` or ``"sdxl"``), seeded and in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        components: dict = {"vae": tiny_vae(), "scheduler": tiny_scheduler(), "tokenizer": tiny_tokenizer()}
        if arch == "sd15":
            components["text_encoder"] = CLIPTextModel(_text_config(TEXT_WIDTH))
            components["unet"] = tiny_sd15_unet()
        elif arch == "sdxl":
            components["text_encoder"] = CLIPTextModel(_text_config(TEXT_WIDTH))
            components["text_encoder_2"] = CLIPTextModelWithProjection(_text_config(TEXT_WIDTH_2))
            components["tokenizer_2"] = tiny_tokenizer()
            components["unet"] = tiny_sdxl_unet()
        else:
            raise ValueError(f"no tiny model for architecture {arch!r}")
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    return components


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


def tiny_pipeline(arch: str = "sd15"):
    """A diffusers ``StableDiffusionPipeline`` (or ``StableDiffusionXLPipeline``) of the tiny
    random-weight components: a stand-in for a pipeline loaded with ``from_pretrained``, for
    examples and tests that wrap a user's own pipeline (``adcli.from_pipe``)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    components = build_tiny_components(arch)
    if arch == "sdxl":
        pipe = StableDiffusionXLPipeline(**components)
    else:
        pipe = StableDiffusionPipeline(**components, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
