"""The tiny FLUX.1 and SD3.5 models: real block layouts, real configs, built offline and seeded."""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxPipeline, StableDiffusion3Pipeline

from adcli.engine.archs.tiny_transformers import (
    build_tiny_flux_components,
    build_tiny_sd3_components,
    tiny_flux_pipeline,
    tiny_sd3_pipeline,
    tiny_t5_tokenizer,
)


@pytest.fixture(scope="module")
def flux():
    return build_tiny_flux_components("dev")


@pytest.fixture(scope="module")
def sd3():
    return build_tiny_sd3_components()


def test_tiny_flux_has_flux1s_layout(flux):
    transformer, vae = flux["transformer"], flux["vae"]
    assert len(transformer.transformer_blocks) == 19 and len(transformer.single_transformer_blocks) == 38
    config = transformer.config
    assert config.in_channels == 64 and config.guidance_embeds
    assert sum(config.axes_dims_rope) == config.attention_head_dim
    assert vae.config.latent_channels == 16 and len(vae.config.block_out_channels) == 4  # 8× downsampling
    assert (vae.config.scaling_factor, vae.config.shift_factor) == (0.3611, 0.1159)
    scheduler = flux["scheduler"].config
    assert scheduler.use_dynamic_shifting and (scheduler.base_shift, scheduler.max_shift) == (0.5, 1.15)
    assert (scheduler.base_image_seq_len, scheduler.max_image_seq_len) == (256, 4096)
    assert type(flux["text_encoder"]).__name__ == "CLIPTextModel"
    assert type(flux["text_encoder_2"]).__name__ == "T5EncoderModel"


def test_tiny_flux_schnell_has_no_guidance_embedding_nor_shift():
    components = build_tiny_flux_components("schnell")
    assert not components["transformer"].config.guidance_embeds
    assert not components["scheduler"].config.use_dynamic_shifting and components["scheduler"].config.shift == 1.0
    with pytest.raises(ValueError, match="variant"):
        build_tiny_flux_components("pro")


def test_tiny_sd3_has_sd35_mediums_layout(sd3):
    transformer, vae = sd3["transformer"], sd3["vae"]
    blocks = transformer.transformer_blocks
    assert len(blocks) == 24
    assert [i for i, block in enumerate(blocks) if block.attn2 is not None] == list(range(13))
    assert type(blocks[0].attn.norm_q).__name__ == "RMSNorm" and blocks[0].attn.norm_added_k is not None
    assert blocks[-1].context_pre_only
    config = transformer.config
    assert (config.patch_size, config.in_channels, config.pos_embed_max_size) == (2, 16, 384)
    assert vae.config.latent_channels == 16 and (vae.config.scaling_factor, vae.config.shift_factor) == (1.5305, 0.0609)
    assert sd3["scheduler"].config.shift == 3.0 and not sd3["scheduler"].config.use_dynamic_shifting
    assert sd3["text_encoder"].config.hidden_size < sd3["text_encoder_2"].config.hidden_size
    assert transformer.config.pooled_projection_dim == (
        sd3["text_encoder"].config.projection_dim + sd3["text_encoder_2"].config.projection_dim
    )


def test_tiny_models_are_seeded(sd3):
    again = build_tiny_sd3_components()
    for name in ("transformer", "text_encoder_3", "vae"):
        for (key, a), (_, b) in zip(sd3[name].state_dict().items(), again[name].state_dict().items()):
            assert torch.equal(a, b), (name, key)


def test_t5_tokenizer_built_in_memory():
    tokenizer = tiny_t5_tokenizer()
    ids = tokenizer(["a cat"], padding="max_length", max_length=8, return_tensors="pt").input_ids
    assert ids.shape == (1, 8)
    assert tokenizer.convert_ids_to_tokens(ids[0])[:5] == ["▁a", "▁c", "a", "t", "</s>"]
    assert ids[0, 5:].tolist() == [tokenizer.pad_token_id] * 3 == [0, 0, 0]


def test_tiny_pipelines_draw_pictures():
    flux = tiny_flux_pipeline("schnell")
    assert isinstance(flux, FluxPipeline)
    image = flux("a", height=32, width=48, num_inference_steps=1, max_sequence_length=8).images[0]
    assert image.size == (48, 32)
    sd3 = tiny_sd3_pipeline()
    assert isinstance(sd3, StableDiffusion3Pipeline)
    image = sd3("a", height=32, width=48, num_inference_steps=1, max_sequence_length=8).images[0]
    assert image.size == (48, 32)
