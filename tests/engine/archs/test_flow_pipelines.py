"""Prompt encoding and plain Euler sampling built from adcli's pieces equal diffusers' own FluxPipeline
and StableDiffusion3Pipeline on the tiny models: same prompt, steps, guidance and start latents."""

from __future__ import annotations

import pytest
import torch

from adcli.engine.archs.flow import flux_image_ids, flux_sigmas, pack_latents, sample_euler, sd3_sigmas
from adcli.engine.archs.flux_conditioning import encode_flux_prompts, flux_denoiser, flux_guidance
from adcli.engine.archs.sd3_conditioning import encode_sd3_prompts, sd3_denoiser
from adcli.engine.archs.tiny_transformers import tiny_flux_pipeline, tiny_sd3_pipeline

T5_TOKENS = 16  # max_sequence_length for both pipelines: short, so the tests stay fast
PROMPT = "a red cat on a bench"


@pytest.fixture(scope="module", params=["dev", "schnell"])
def flux(request):
    return tiny_flux_pipeline(request.param)


@pytest.fixture(scope="module")
def sd3():
    return tiny_sd3_pipeline()


def start_latents(shape, seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def flux_prompt(pipe, prompts):
    return encode_flux_prompts(pipe.tokenizer, pipe.text_encoder, pipe.tokenizer_2, pipe.text_encoder_2, prompts, T5_TOKENS)


def sd3_prompt(pipe, prompts):
    tokenizers = [pipe.tokenizer, pipe.tokenizer_2, pipe.tokenizer_3]
    encoders = [pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3]
    return encode_sd3_prompts(tokenizers, encoders, prompts, T5_TOKENS)


def test_flux_prompt_encoding_equals_the_pipelines(flux):
    ours = flux_prompt(flux, [PROMPT, ""])
    embeds, pooled, text_ids = flux.encode_prompt([PROMPT, ""], max_sequence_length=T5_TOKENS)
    assert torch.equal(ours.embeds, embeds) and torch.equal(ours.pooled, pooled) and torch.equal(ours.text_ids, text_ids)
    assert ours.embeds.shape[1] == T5_TOKENS and not ours.text_ids.any()


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_flux_euler_sampling_equals_flux_pipeline(flux, size):
    height, width = size
    grid = (height // 16, width // 16)
    latents = pack_latents(start_latents((1, 16, height // 8, width // 8)))  # FluxPipeline takes packed latents
    expected = flux(
        PROMPT, height=height, width=width, num_inference_steps=4, guidance_scale=3.5, latents=latents,
        output_type="latent", max_sequence_length=T5_TOKENS,
    ).images
    config = flux.scheduler.config
    denoise = flux_denoiser(flux.transformer, flux_prompt(flux, [PROMPT]), flux_image_ids(grid), 3.5, config)
    ours = sample_euler(denoise, latents, flux_sigmas(4, latents.shape[1], config))
    assert torch.equal(ours, expected)


def test_flux_guidance_is_embedded_by_dev_only(flux):
    guidance = flux_guidance(flux.transformer, 3.5, 2, torch.device("cpu"))
    if flux.transformer.config.guidance_embeds:
        assert guidance.tolist() == [3.5, 3.5] and guidance.dtype == torch.float32
        with pytest.raises(ValueError, match="guidance"):
            flux_guidance(flux.transformer, None, 1, torch.device("cpu"))
    else:
        assert guidance is None  # schnell: a guidance value would fail inside the model


def test_sd3_prompt_encoding_equals_the_pipelines(sd3):
    embeds, negative, pooled, negative_pooled = sd3.encode_prompt(
        PROMPT, None, None, do_classifier_free_guidance=True, max_sequence_length=T5_TOKENS
    )
    ours, empty = sd3_prompt(sd3, [PROMPT]), sd3_prompt(sd3, [""])
    assert torch.equal(ours.embeds, embeds) and torch.equal(ours.pooled, pooled)
    assert torch.equal(empty.embeds, negative) and torch.equal(empty.pooled, negative_pooled)
    assert ours.embeds.shape[1] == 77 + T5_TOKENS


@pytest.mark.parametrize("guidance", [1.0, 5.0])
def test_sd3_euler_sampling_equals_sd3_pipeline(sd3, guidance):
    latents = start_latents((2, 16, 6, 10))
    expected = sd3(
        PROMPT, height=48, width=80, num_inference_steps=4, guidance_scale=guidance, latents=latents,
        num_images_per_prompt=2, output_type="latent", max_sequence_length=T5_TOKENS,
    ).images
    config = sd3.scheduler.config
    denoise = sd3_denoiser(sd3.transformer, sd3_prompt(sd3, [PROMPT]), config, sd3_prompt(sd3, [""]), guidance)
    ours = sample_euler(denoise, latents, sd3_sigmas(4, config))
    assert torch.equal(ours, expected)


def test_sampling_depends_on_prompt_and_guidance(sd3):
    """Equality above would be hollow if the tiny models ignored their conditioning."""
    latents, config = start_latents((1, 16, 4, 4)), sd3.scheduler.config
    sigmas = sd3_sigmas(2, config)
    empty = sd3_prompt(sd3, [""])
    a = sample_euler(sd3_denoiser(sd3.transformer, sd3_prompt(sd3, ["a cat"]), config, empty, 5.0), latents, sigmas)
    b = sample_euler(sd3_denoiser(sd3.transformer, sd3_prompt(sd3, ["a dog"]), config, empty, 5.0), latents, sigmas)
    c = sample_euler(sd3_denoiser(sd3.transformer, sd3_prompt(sd3, ["a cat"]), config, empty, 2.0), latents, sigmas)
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_sd3_without_t5_encodes_zeros_as_its_pipeline_does(sd3):
    from diffusers import StableDiffusion3Pipeline

    parts = dict(sd3.components, text_encoder_3=None, tokenizer_3=None)
    no_t5 = StableDiffusion3Pipeline(**parts)
    embeds, _, pooled, _ = no_t5.encode_prompt(PROMPT, None, None, do_classifier_free_guidance=False,
                                               max_sequence_length=T5_TOKENS)
    tokenizers = [sd3.tokenizer, sd3.tokenizer_2, None]
    encoders = [sd3.text_encoder, sd3.text_encoder_2, None]
    width = sd3.transformer.config.joint_attention_dim
    ours = encode_sd3_prompts(tokenizers, encoders, [PROMPT], T5_TOKENS, joint_attention_dim=width)
    assert torch.equal(ours.embeds, embeds) and torch.equal(ours.pooled, pooled)
    assert not ours.embeds[:, 77:].any()
