"""AD on FLUX.1 and SD3.5 as the paper's FLUX code does it, checked on the tiny models: plain sampling
equal to diffusers' own pipelines (and the seam's SD1.5/SDXL against theirs, with DDIM), the AD step
(reference noised to the new σ with fresh noise, clean after the last step; AdaIN per packed channel;
the loss falling over each step's iterations; the empty prompt and guidance 1 in feature passes),
Algorithm 1's σ falling from 1 to 0, label maps on the token grid, references of another size, and
the defaults the presets give."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

import adcli
from adcli.engine import features as features_module
from adcli.engine.archs.flow import pack_latents
from adcli.engine.archs.tiny_transformers import TINY_T5_TOKENS, tiny_flux_pipeline, tiny_sd3_pipeline
from adcli.engine.config import SamplingConfig
from adcli.engine.features import Guide
from adcli.engine.guidance import ADGuidance
from adcli.engine.tiny import tiny_pipeline
from adcli.presets import load_settings

STYLE = "samples/style/hubble.jpg"
PROMPT = "a red house by the sea"


@pytest.fixture(scope="module")
def models():
    return {name: adcli.load_model(name, device="cpu") for name in ("tiny-flux", "tiny-flux-schnell", "tiny-sd3")}


def start(shape, seed=3):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def as_array(image):
    return np.asarray(image.convert("RGB")).astype(int)


@pytest.mark.parametrize("name, variant", [("tiny-flux", "dev"), ("tiny-flux-schnell", "schnell")])
def test_zero_ad_iterations_equals_flux_pipeline(models, name, variant):
    """The same prompt, steps, guidance and packed start latents: the same picture as FluxPipeline
    (whose T5 length is the tiny tokenizer's 32 tokens, as adcli's; FLUX.1-dev's is 512)."""
    pipe = tiny_flux_pipeline(variant)
    latents = pack_latents(start((2, 16, 8, 6)))  # FluxPipeline takes (B, h/2·w/2, 64)
    ours = adcli.t2i(models[name], PROMPT, STYLE, num_images=2, size="48x64", steps=4, guidance=3.5,
                     ad_iterations=0, latents=latents)
    for index, mine in enumerate(ours):  # one call each: a batch of two sums its matrix products in another order
        [theirs] = pipe(PROMPT, height=64, width=48, num_inference_steps=4, guidance_scale=3.5,
                        latents=latents[index : index + 1], max_sequence_length=TINY_T5_TOKENS).images
        assert np.array_equal(as_array(mine), as_array(theirs))
    assert not np.array_equal(as_array(ours[0]), as_array(ours[1]))  # each image its own start latents


@pytest.mark.parametrize("guidance", [1.0, 4.5])
def test_zero_ad_iterations_equals_sd3_pipeline(models, guidance):
    pipe = tiny_sd3_pipeline()
    latents = start((1, 16, 6, 8))
    [ours] = adcli.t2i(models["tiny-sd3"], PROMPT, STYLE, size="64x48", steps=4, guidance=guidance, ad_iterations=0,
                       latents=latents, negative_prompt="blurry")
    [theirs] = pipe(PROMPT, negative_prompt="blurry", height=48, width=64, num_inference_steps=4,
                    guidance_scale=guidance, latents=latents, max_sequence_length=TINY_T5_TOKENS).images
    assert np.array_equal(as_array(ours), as_array(theirs))


@pytest.mark.parametrize("name, pipeline_class", [("tiny", StableDiffusionPipeline), ("tiny-sdxl", StableDiffusionXLPipeline)])
def test_zero_ad_iterations_equals_the_unet_pipelines_with_ddim(name, pipeline_class):
    """The seam's check on the UNets: their DDIM pipelines, a non-empty negative prompt (SDXL's
    pipeline would swap an empty one for zeros; adcli encodes the empty string, as the paper's code)."""
    pipe = tiny_pipeline(name)
    assert isinstance(pipe, pipeline_class)
    latents = start((1, 4, 6, 8))
    [ours] = adcli.t2i(adcli.load_model(name, device="cpu"), PROMPT, STYLE, size="64x48", steps=5, guidance=6.0,
                       ad_iterations=0, latents=latents, negative_prompt="blurry")
    [theirs] = pipe(PROMPT, negative_prompt="blurry", height=48, width=64, num_inference_steps=5, guidance_scale=6.0,
                    latents=latents).images
    assert np.array_equal(as_array(ours), as_array(theirs))


def test_latents_of_the_wrong_shape_are_one_line_errors(models):
    with pytest.raises(adcli.errors.InputError, match=r"latents of shape \(1, 16, 8, 6\) do not fit a 48x64 image on "
                                                       r"FLUX.1: give what FluxPipeline takes"):
        adcli.t2i(models["tiny-flux"], PROMPT, STYLE, size="48x64", steps=2, ad_iterations=0, latents=start((1, 16, 8, 6)))
    with pytest.raises(ValueError, match="latents holds 1 start latents for num_images=2"):
        adcli.t2i(models["tiny-sd3"], PROMPT, STYLE, num_images=2, size="64x48", steps=2, latents=start((1, 16, 6, 8)))


def test_given_start_latents_are_recorded(models):
    [image] = adcli.t2i(models["tiny-sd3"], PROMPT, STYLE, size="64x48", steps=2, ad_iterations=0,
                        latents=start((1, 16, 6, 8)))
    assert "start_latents_sha256" in image.info["adcli"]


@pytest.fixture
def recorded_losses(monkeypatch):
    """Every AD loss the engine computes, in order (the sampler reads them back only at a step's end)."""
    seen: list[float] = []
    original = features_module.distillation_losses

    def record(*args, **kwargs):
        losses = original(*args, **kwargs)
        seen.append(float(losses.detach().mean()))
        return losses

    monkeypatch.setattr("adcli.engine.guidance.distillation_losses", record)
    return seen


@pytest.mark.parametrize("name", ["tiny-flux", "tiny-flux-schnell", "tiny-sd3"])
def test_the_ad_loss_falls_over_each_steps_iterations(models, name, recorded_losses):
    iterations, steps = 4, 3
    adcli.t2i(models[name], PROMPT, STYLE, size="64x64", steps=steps, ad_iterations=iterations, seed=2)  # lr 0.01
    assert len(recorded_losses) == steps * iterations
    for step in range(steps):
        own = recorded_losses[step * iterations : (step + 1) * iterations]
        assert own[-1] < own[0], (step, own)


@pytest.mark.parametrize("name", ["tiny-flux", "tiny-sd3"])
def test_the_reference_is_noised_to_the_new_sigma_with_fresh_noise_and_clean_at_the_end(models, name):
    backend = models[name].backend
    reference = start((1, 16, 4, 4), seed=5)
    schedule = backend.schedule(4, (4, 4))
    generator = torch.Generator().manual_seed(7)
    config = SamplingConfig(steps=4, ad_iterations=1, lr=0.01, layers=(-1,))
    hook = ADGuidance(backend, Guide(reference), generator, config)
    expected_generator = torch.Generator().manual_seed(7)
    with hook.installed():
        for index in (1, 2):
            point = schedule[index]
            noise = torch.randn(reference.shape, generator=expected_generator)
            sigma = float(point.sigma)
            assert torch.allclose(hook.prepare(point).noised, (1 - sigma) * reference + sigma * noise, atol=1e-6)
        final = hook.prepare(schedule[-1])
    assert float(schedule.sigmas[-1]) == 0.0 and torch.equal(final.noised, reference)


def test_feature_passes_take_the_empty_prompt_and_guidance_1(models, monkeypatch):
    """FLUX.1-dev's AD passes embed guidance 1 (3.5 only to generate); schnell's get no guidance input."""
    seen = []
    for name in ("tiny-flux", "tiny-flux-schnell"):
        backend = models[name].backend
        original = backend.arch.predict

        def predict(arch, b, latents, timestep, inputs, control=None, original=original):
            seen.append((name, inputs.get("guidance"), inputs["encoder_hidden_states"]))
            return original(b, latents, timestep, inputs, control)

        monkeypatch.setattr(type(backend.arch), "predict", predict)
        adcli.texture(models[name], STYLE, mode="sample", size="64x64", steps=1, ad_iterations=1)
        monkeypatch.undo()
    empty = {name: models[name].backend.encode_prompts([""])["embeds"] for name in ("tiny-flux", "tiny-flux-schnell")}
    dev = [guidance for name, guidance, _ in seen if name == "tiny-flux"]
    assert all(g is not None and g.tolist() == [1.0] * len(g) for g in dev)
    assert all(guidance is None for name, guidance, _ in seen if name == "tiny-flux-schnell")
    assert all(torch.equal(embeds[:1], empty[name]) for name, _, embeds in seen)


def test_generation_passes_embed_the_guidance_value(models, monkeypatch):
    seen = []
    backend = models["tiny-flux"].backend
    original = backend.arch.predict

    def predict(arch, b, latents, timestep, inputs, control=None):
        seen.append(inputs["guidance"].tolist())
        return original(b, latents, timestep, inputs, control)

    monkeypatch.setattr(type(backend.arch), "predict", predict)
    adcli.t2i(models["tiny-flux"], PROMPT, STYLE, size="64x64", steps=2, ad_iterations=0, guidance=3.5)
    assert seen == [[3.5], [3.5]]


@pytest.mark.parametrize("name", ["tiny-flux", "tiny-sd3"])
def test_adain_matches_each_packed_channel_to_the_reference(models, name):
    """Per (channel, dy, dx) of the 2×2 patch: mean and unbiased std over the tokens, eps on the std."""
    arch = models[name].backend.arch
    latents, reference = start((1, 16, 6, 8), 1) * 3 + 1, start((1, 16, 4, 4), 2) * 0.5 - 2
    matched = arch.adain(latents, reference)
    assert matched.shape == latents.shape

    def packed_channels(x):  # (B, 16, h, w) → (64, B·h/2·w/2) by hand: channel c, row offset dy, column offset dx
        return torch.stack([x[:, c, dy::2, dx::2].reshape(-1) for c in range(16) for dy in range(2) for dx in range(2)])

    ours, theirs = packed_channels(matched), packed_channels(reference)
    assert torch.allclose(ours.mean(1), theirs.mean(1), atol=1e-5)
    assert torch.allclose(ours.std(1), theirs.std(1), rtol=1e-4)
    # 16 channels alone would not do: AdaIN over the unpacked channels leaves the 64 packed ones apart
    per_channel = torch.stack([latents[:, c].reshape(-1) for c in range(16)])
    assert not torch.allclose(packed_channels(latents).mean(1), per_channel.mean(1).repeat_interleave(4))


@pytest.mark.parametrize("name", ["tiny-flux", "tiny-sd3"])
def test_algorithm_1_takes_sigma_from_1_down_to_0(models, name, monkeypatch):
    backend = models[name].backend
    seen = []
    original = backend.arch.predict

    def predict(arch, b, latents, timestep, inputs, control=None):
        if latents.requires_grad:  # the target's passes (the reference's run without gradients)
            seen.append(float(timestep.reshape(-1)[0]))
        return original(b, latents, timestep, inputs, control)

    monkeypatch.setattr(type(backend.arch), "predict", predict)
    adcli.texture(models[name], STYLE, size="64x64", iterations=5)
    assert len(seen) == 5 and seen[0] == pytest.approx(1000.0) and seen == sorted(seen, reverse=True) and seen[-1] > 0


@pytest.mark.parametrize("name", ["tiny-flux", "tiny-sd3"])
def test_label_maps_meet_the_token_grid(models, name, monkeypatch):
    from adcli.engine import masks

    grids = []
    original = masks.MaskedAttention.__call__

    def call(self, target_grid, ref_grid):
        grids.append((tuple(target_grid), tuple(ref_grid)))
        return original(self, target_grid, ref_grid)

    monkeypatch.setattr(masks.MaskedAttention, "__call__", call)
    [image] = adcli.texture(models[name], "samples/masks/source_texture.png", source_mask="samples/masks/source_labels.png",
                            target_mask="samples/masks/target_labels.png", size="96", iterations=2)
    width, height = image.size
    assert width % 16 == 0 and height % 16 == 0
    assert {target for target, _ in grids} == {(height // 16, width // 16)}  # one token per 16×16 pixels


@pytest.mark.parametrize("name", ["tiny-flux", "tiny-sd3"])
def test_a_reference_of_another_size(models, name):
    """A wide reference keeps its aspect ratio (its own token grid and, on FLUX, its own RoPE positions)."""
    model = models[name]
    wide = "samples/content/chelsea.jpg"
    [image] = adcli.t2i(model, PROMPT, wide, size="64x64", steps=2, ad_iterations=2)
    reference = model.cache.references(model.backend, [wide], (64, 64))
    assert tuple(reference.shape[-2:]) == (6, 10)  # 80×48 px: its own aspect ratio at the output's pixel count
    assert image.size == (64, 64)


def test_defaults_follow_the_papers_flux_code_and_schnell_and_sd35():
    def resolved(model, **given):
        return load_settings("t2i", None, {"model": model, **given}).settings

    dev, schnell, sd3 = resolved("tiny-flux"), resolved("tiny-flux-schnell"), resolved("tiny-sd3")
    assert (dev.steps, dev.guidance, dev.ad_iterations, dev.lr, dev.size, dev.adain) == (50, 3.5, 2, 0.01, "512", True)
    assert tuple(dev.layers) == tuple(range(-7, 0))  # the last 7 attention layers: FLUX.1's 50–56
    assert (schnell.steps, schnell.ad_iterations, schnell.lr) == (4, 2, 0.01)
    assert (sd3.steps, sd3.guidance, sd3.ad_iterations, sd3.lr, tuple(sd3.layers)) == (40, 4.5, 2, 0.01, tuple(range(-7, 0)))
    for task in ("style-transfer", "appearance", "texture", "expand"):
        assert tuple(load_settings(task, None, {"model": "tiny-flux"}).settings.layers) == tuple(range(-7, 0))
    assert load_settings("texture", None, {"model": "tiny-flux-schnell"}).settings.steps == 4
    assert resolved("tiny").ad_iterations == 3  # the UNets keep theirs


def test_arch_picks_the_default_model_and_checks_a_given_one():
    assert load_settings("t2i", None, {"arch": "flux"}).settings.model == "black-forest-labs/FLUX.1-dev"
    assert load_settings("style-transfer", None, {"arch": "sd3"}).settings.model == "stabilityai/stable-diffusion-3.5-medium"
    with pytest.raises(adcli.errors.ModelLoadError, match="arch sd3 was asked for, but model tiny-flux is flux"):
        adcli.load_model("tiny-flux", arch="sd3", device="cpu")
    assert adcli.load_model("tiny-flux-schnell", arch="flux", device="cpu").preset_arch == "flux-schnell"
