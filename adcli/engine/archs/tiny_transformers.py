"""Tiny random-weight FLUX.1 and SD3.5 models built in code, for tests, CI and demos with no download.

They keep the real block layouts — FLUX.1: 19 double-stream + 38 single-stream blocks (57
attention modules); SD3.5 Medium: 24 joint blocks, an extra image-only attention (``attn2``) in
blocks 0–12, QK RMS-norm, 2×2 patches — the real text-encoder line-up (CLIP + T5; CLIP-L +
CLIP-G + T5), 16-channel VAEs with 8× downsampling and the real scaling/shift factors, and the
real scheduler configurations, so that layer selection, conditioning, the sigma schedule and
every code path behave as with the real weights; only the widths shrink. Their pictures are
noise: real results need the real weights.
"""

from __future__ import annotations

import string

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from transformers import (
    CLIPTextModel,
    CLIPTextModelWithProjection,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

from adcli.engine.tiny import TINY_SEED, text_config, tiny_tokenizer, tiny_vae

CLIP_WIDTH = 32  # CLIP-L stand-in (FLUX's only CLIP; SD3's first)
CLIP_G_WIDTH = 48  # SD3's CLIP-G stand-in: wider than CLIP-L, as 1280 is wider than 768
T5_WIDTH = 32  # FLUX: the transformer's joint_attention_dim
# SD3 pads the two CLIPs' hidden states (concatenated: 32 + 48) to T5's width, as 768 + 1280 → 4096.
SD3_T5_WIDTH = 96
FLUX_VARIANTS = ("dev", "schnell")
# T5 tokens per prompt on the tiny models (the tokenizers' model_max_length): the real pipelines pad
# to 512 (FLUX.1-dev) or 256, which would make the joint sequence of a 64² image 97 % text.
TINY_T5_TOKENS = 32
# Latents per side the tiny transformers call native (64 px), as the tiny UNets do.
TINY_SAMPLE_SIZE = 8

# Scheduler configurations of the released models (scheduler/scheduler_config.json).
FLUX_DEV_SCHEDULER = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
FLUX_SCHNELL_SCHEDULER = FLUX_DEV_SCHEDULER | {"shift": 1.0, "use_dynamic_shifting": False}
SD35_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0}
# VAE latent normalisation of the released models: latents = (encoded − shift) · scaling.
FLUX_VAE_FACTORS = {"scaling_factor": 0.3611, "shift_factor": 0.1159}
SD3_VAE_FACTORS = {"scaling_factor": 1.5305, "shift_factor": 0.0609}


def tiny_t5_tokenizer() -> T5TokenizerFast:
    """A character-level T5 (Unigram) tokenizer built in memory: no sentencepiece, no download.

    The vocabulary keeps T5's layout (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2): every printable
    ASCII character, alone and with the word-start marker ``▁``; a word start is cheaper as one
    piece, so "a cat" → ``▁a ▁c a t </s>``. transformers 5 builds the Unigram model from a
    ``[(piece, log-probability)]`` list.
    """
    characters = [c for c in string.printable if not c.isspace()]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(c, -3.0) for c in characters] + [("▁" + c, -3.5) for c in characters]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=TINY_T5_TOKENS)


def tiny_t5(width: int) -> T5EncoderModel:
    """A two-layer T5 v1.1-style encoder (gated GELU), ``width`` wide."""
    config = T5Config(
        vocab_size=256,
        d_model=width,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        is_encoder_decoder=False,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5EncoderModel(config)


def tiny_vae16(factors: dict) -> AutoencoderKL:
    """The tiny VAE with 16 latent channels and no quant convs, as FLUX's and SD3's VAEs."""
    return tiny_vae(16, use_quant_conv=False, use_post_quant_conv=False, **factors)


def tiny_flux_transformer(guidance_embeds: bool = True) -> FluxTransformer2DModel:
    """FLUX.1's layout: 19 double + 38 single blocks, 2×2-packed 16-channel latents (64 inputs).

    Heads of 16 dimensions rotated by 3-axis RoPE (4 + 6 + 6 = 16, FLUX: 16 + 56 + 56 = 128).
    ``guidance_embeds``: FLUX.1-dev embeds its guidance value; schnell has no such input. Its config
    also says its native size (``sample_size``, which the released FLUX.1 configs leave to the pipeline).
    """
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=19,
        num_single_layers=38,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_WIDTH,
        pooled_projection_dim=CLIP_WIDTH,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 6, 6),
    )
    transformer.register_to_config(sample_size=TINY_SAMPLE_SIZE)
    return transformer


def tiny_sd3_transformer() -> SD3Transformer2DModel:
    """SD3.5 Medium's layout: 24 joint blocks, dual attention in 0–12, QK RMS-norm, 2×2 patches.

    ``pos_embed_max_size`` 384 as Medium's (a 384 × 384 patch table, cropped to the image); the
    last block is ``context_pre_only`` (its text stream is not updated), as in every SD3.
    """
    return SD3Transformer2DModel(
        sample_size=TINY_SAMPLE_SIZE,
        patch_size=2,
        in_channels=16,
        num_layers=24,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=SD3_T5_WIDTH,
        caption_projection_dim=32,
        pooled_projection_dim=CLIP_WIDTH + CLIP_G_WIDTH,
        out_channels=16,
        pos_embed_max_size=384,
        dual_attention_layers=tuple(range(13)),
        qk_norm="rms_norm",
    )


def small_text_parts(clip_widths: tuple[int, ...], t5_width: int) -> dict:
    """Tiny CLIPs (one pooled output each, ``clip_widths`` wide) and a tiny T5 ``t5_width`` wide, with
    their tokenizers: the text side of a full-size transformer with random weights (benchmarks)."""
    parts: dict = {}
    names = [("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"), ("tokenizer_3", "text_encoder_3")]
    for (tokenizer, encoder), width in zip(names, clip_widths):
        parts[tokenizer], parts[encoder] = tiny_tokenizer(), CLIPTextModelWithProjection(text_config(width))
    tokenizer, encoder = names[len(clip_widths)]
    parts[tokenizer], parts[encoder] = tiny_t5_tokenizer(), tiny_t5(t5_width)
    if len(clip_widths) == 1:  # FLUX reads CLIP-L's pooled output without a projection
        parts["text_encoder"] = CLIPTextModel(text_config(clip_widths[0]))
    return _frozen(parts)


def _frozen(components: dict) -> dict:
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    return components


def build_tiny_flux_components(variant: str = "dev") -> dict:
    """FluxPipeline's components, seeded: ``"dev"`` (guidance embedding, dynamic shifting) or ``"schnell"``."""
    if variant not in FLUX_VARIANTS:
        raise ValueError(f"no tiny FLUX variant {variant!r}: use one of {', '.join(FLUX_VARIANTS)}")
    dev = variant == "dev"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        components = {
            "scheduler": FlowMatchEulerDiscreteScheduler(**(FLUX_DEV_SCHEDULER if dev else FLUX_SCHNELL_SCHEDULER)),
            "vae": tiny_vae16(FLUX_VAE_FACTORS),
            "text_encoder": CLIPTextModel(text_config(CLIP_WIDTH)),
            "tokenizer": tiny_tokenizer(),
            "text_encoder_2": tiny_t5(T5_WIDTH),
            "tokenizer_2": tiny_t5_tokenizer(),
            "transformer": tiny_flux_transformer(guidance_embeds=dev),
        }
    return _frozen(components)


def build_tiny_sd3_components() -> dict:
    """StableDiffusion3Pipeline's components (SD3.5 Medium layout), seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        components = {
            "scheduler": FlowMatchEulerDiscreteScheduler(**SD35_SCHEDULER),
            "vae": tiny_vae16(SD3_VAE_FACTORS),
            "text_encoder": CLIPTextModelWithProjection(text_config(CLIP_WIDTH)),
            "tokenizer": tiny_tokenizer(),
            "text_encoder_2": CLIPTextModelWithProjection(text_config(CLIP_G_WIDTH)),
            "tokenizer_2": tiny_tokenizer(),
            "text_encoder_3": tiny_t5(SD3_T5_WIDTH),
            "tokenizer_3": tiny_t5_tokenizer(),
            "transformer": tiny_sd3_transformer(),
        }
    return _frozen(components)


def tiny_flux_pipeline(variant: str = "dev") -> FluxPipeline:
    """A diffusers ``FluxPipeline`` of the tiny components: a stand-in for a user's FLUX.1 pipeline."""
    pipe = FluxPipeline(**build_tiny_flux_components(variant))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sd3_pipeline() -> StableDiffusion3Pipeline:
    """A diffusers ``StableDiffusion3Pipeline`` of the tiny components: a stand-in for SD3.5 Medium."""
    pipe = StableDiffusion3Pipeline(**build_tiny_sd3_components())
    pipe.set_progress_bar_config(disable=True)
    return pipe
