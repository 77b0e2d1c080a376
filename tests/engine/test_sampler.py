"""AD-guided sampling (Alg. 2) on the tiny SD1.5 and SDXL models: the maths of the loop and the hook."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from adcli.engine.config import SamplingConfig
from adcli.engine.controlnet import Control
from adcli.engine.features import Guide, distillation_loss
from adcli.engine.guidance import ADGuidance, adain
from adcli.engine.models import load_backend
from adcli.engine.sampler import (
    distill_by_sampling,
    negative_conditioning,
    sample,
    sdedit_start,
    text_denoiser,
)
from adcli.errors import NumericalError

LAYERS = [-6, -5, -4, -3, -2, -1]
SIZE = (64, 64)  # pixels → 8×8 latents



@pytest.fixture(scope="module", params=["tiny", "tiny-sdxl"])
def backend(request):
    return load_backend(request.param, device=torch.device("cpu"), dtype=torch.float32, controlnet="tiny")


def _reference(seed: int = 1, count: int = 1) -> torch.Tensor:
    return torch.randn((count, 4, 8, 8), generator=torch.Generator().manual_seed(seed))


def _config(steps=3, iterations=0, lr=0.05, adain=True, strength=1.0) -> SamplingConfig:
    return SamplingConfig(steps, iterations, lr, LAYERS, adain, strength)


def _sample(backend, seed=3, iterations=0, steps=3, guide=None, **kwargs) -> torch.Tensor:
    denoise = text_denoiser(backend, backend.encode_prompts(["a cat"]), negative_conditioning(backend, ""), 7.0)
    return distill_by_sampling(
        backend, denoise, guide or Guide(reference=_reference()), _config(steps, iterations), size=SIZE,
        generator=torch.Generator().manual_seed(seed), **kwargs,
    )


def test_adain_matches_per_channel_mean_and_std():
    latents = torch.randn(2, 4, 8, 6) * 3 + 1
    references = torch.randn(2, 4, 10, 10) * torch.tensor([0.5, 1, 2, 4]).view(1, 4, 1, 1) - 2
    out = adain(latents, references)
    pooled = references.permute(1, 0, 2, 3).reshape(4, -1)
    for image in out:
        flat = image.reshape(4, -1)
        torch.testing.assert_close(flat.mean(1), pooled.mean(1), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(flat.std(1), pooled.std(1), atol=1e-3, rtol=1e-3)
    # the spatial pattern is kept: AdaIN is an affine map per channel
    corr = torch.corrcoef(torch.stack([latents[0, 2].flatten(), out[0, 2].flatten()]))[0, 1]
    assert corr > 0.999


def test_adain_divides_by_std_plus_1e6_as_the_reference_code():
    """A channel whose std (1e-6) is as small as eps: the result depends on eps itself.
    By hand: x = [0, 1e-6, 2e-6] → mean 1e-6, unbiased std 1e-6; reference [1, 3] → mean 2,
    std √2; out = (x − 1e-6) / (1e-6 + 1e-6) · √2 + 2 = [2 − √2/2, 2, 2 + √2/2]."""
    latents = torch.tensor([0.0, 1e-6, 2e-6], dtype=torch.float64).view(1, 1, 1, 3)
    reference = torch.tensor([1.0, 3.0], dtype=torch.float64).view(1, 1, 1, 2)
    half = 2**0.5 / 2
    expected = torch.tensor([2 - half, 2.0, 2 + half], dtype=torch.float64).view(1, 1, 1, 3)
    torch.testing.assert_close(adain(latents, reference), expected)


def test_sdxl_empty_negative_prompt_is_the_encoded_empty_string(tiny_sdxl):
    """By hand, as the paper's code: "" through both text encoders, penultimate hidden states
    joined on the feature axis, the pooled embedding from the second (projection) encoder."""
    hidden, pooled = [], None
    for tokenizer, encoder in zip(tiny_sdxl.tokenizers, tiny_sdxl.text_encoders, strict=True):
        ids = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
        with torch.no_grad():
            output = encoder(ids, output_hidden_states=True)
        hidden.append(output.hidden_states[-2])
        pooled = output.text_embeds if hasattr(output, "text_embeds") else pooled
    negative = negative_conditioning(tiny_sdxl, "")
    torch.testing.assert_close(negative["embeds"], torch.cat(hidden, dim=-1))
    torch.testing.assert_close(negative["pooled"], pooled)
    assert negative["embeds"].abs().sum() > 0 and negative["pooled"].abs().sum() > 0  # not zero embeddings


def test_zero_ad_iterations_is_plain_ddim_with_the_same_seed(backend):
    """The sampler with the hook off equals a hand-written diffusers DDIM loop with CFG 7."""
    steps, seed = 3, 3
    ours = _sample(backend, seed=seed, iterations=0, steps=steps)

    scheduler = DDIMScheduler.from_config(backend.scheduler_config)
    scheduler.set_timesteps(steps)
    z = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(seed))
    cond = torch.cat([backend.encode_prompts([""])["embeds"], backend.encode_prompts(["a cat"])["embeds"]])
    extra = {}
    if backend.arch.name == "sdxl":  # the empty negative prompt encoded, as the paper's code does (not zeros)
        pooled = torch.cat([backend.encode_prompts([""])["pooled"], backend.encode_prompts(["a cat"])["pooled"]])
        time_ids = torch.tensor([[64, 64, 0, 0, 64, 64]] * 2, dtype=torch.float32)
        extra = {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}
    with torch.no_grad():
        for t in scheduler.timesteps:
            uncond, text = backend.denoiser(torch.cat([z, z]), t, encoder_hidden_states=cond, **extra).sample.chunk(2)
            z = scheduler.step(uncond + 7.0 * (text - uncond), t, z).prev_sample
    torch.testing.assert_close(ours, z, atol=1e-5, rtol=1e-5)


def test_the_schedule_is_ddims_timesteps_with_their_noise_levels(backend):
    """By hand from the scheduler's ᾱ table: σ = √((1 − ᾱ_t)/ᾱ_t) at each of DDIM's timesteps,
    then timestep 0 at the final ᾱ (where DDIM's last step lands and the last AD step runs)."""
    scheduler = DDIMScheduler.from_config(backend.scheduler_config)
    scheduler.set_timesteps(4)  # leading spacing, offset 1: 751, 501, 251, 1
    schedule = backend.schedule(4, (8, 8))
    assert schedule.timesteps.tolist() == [751, 501, 251, 1, 0] == scheduler.timesteps.tolist() + [0]
    alphas = [float(scheduler.alphas_cumprod[t]) for t in (751, 501, 251, 1)] + [float(scheduler.alphas_cumprod[0])]
    expected = torch.tensor([((1 - a) / a) ** 0.5 for a in alphas], dtype=torch.float64)
    torch.testing.assert_close(schedule.sigmas, expected, rtol=1e-6, atol=0)
    assert schedule.steps == 4 and schedule.starting_at(2).timesteps.tolist() == [251, 1, 0]


def test_ad_guided_sampling_is_reproducible_and_differs_from_plain(backend):
    guided = _sample(backend, iterations=1)
    torch.testing.assert_close(guided, _sample(backend, iterations=1), atol=0, rtol=0)
    assert not torch.allclose(guided, _sample(backend, iterations=0), atol=1e-3)


def test_ad_iterations_lower_the_ad_loss_at_a_step(backend):
    point = backend.schedule(10, (8, 8))[6]  # where step 5 lands
    guide = Guide(reference=_reference(seed=1))
    latents = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(2))

    def ad_loss_after(iterations: int) -> float:
        hook = ADGuidance(backend, guide, torch.Generator().manual_seed(0), _config(10, max(iterations, 1), adain=False))
        with hook.installed():
            step = hook.prepare(point)
            z = hook.apply(latents, step) if iterations else latents
            with torch.no_grad():
                return float(distillation_loss(hook.extract(z, point.timestep), step.reference))

    assert ad_loss_after(3) < ad_loss_after(0)


def test_reference_features_are_computed_once_per_step(backend, monkeypatch):
    """Each AD step runs the UNet once for the reference and once per iteration for the latent."""
    calls = []
    denoiser = backend.denoiser
    original = denoiser.forward
    monkeypatch.setattr(denoiser, "forward", lambda x, *a, **k: calls.append(x.shape[0]) or original(x, *a, **k))
    steps, iterations = 2, 3
    _sample(backend, iterations=iterations, steps=steps)
    # per step: one CFG pass (batch 2), one reference pass (batch 1), then one pass per iteration
    assert calls == [2, 1] + [1] * iterations + [2, 1] + [1] * iterations


def test_layout_strength_sets_the_start_timestep(backend):
    assert [sdedit_start(50, s) for s in (1.0, 0.6, 0.3, 0.01)] == [0, 20, 35, 49]
    assert sdedit_start(4, 0.5) == 2
    seen = []
    denoise = lambda z, point: seen.append(int(point.timestep)) or torch.zeros_like(z)  # noqa: E731
    layout = _reference(seed=5)
    distill_by_sampling(
        backend, denoise, Guide(reference=_reference()), _config(10, 0, adain=False, strength=0.6), size=SIZE,
        generator=torch.Generator().manual_seed(0), init=layout,
    )
    scheduler = DDIMScheduler.from_config(backend.scheduler_config)
    scheduler.set_timesteps(10)
    assert seen == [int(t) for t in scheduler.timesteps][4:]


def test_layout_start_is_the_noised_layout_latent(backend):
    """With strength s the loop starts from add_noise(layout, noise, t_start): with zero noise
    prediction and no AD, DDIM then returns the layout exactly."""
    layout = _reference(seed=5)
    out = distill_by_sampling(
        backend, lambda z, point: torch.zeros_like(z), Guide(reference=_reference()), _config(10, 0, adain=False, strength=0.5),
        size=SIZE, generator=torch.Generator().manual_seed(0), init=layout,
    )
    scheduler = DDIMScheduler.from_config(backend.scheduler_config)
    scheduler.set_timesteps(10)
    start = scheduler.timesteps[sdedit_start(10, 0.5)]
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    expected = scheduler.add_noise(layout, noise, start.reshape(1))
    alpha = scheduler.alphas_cumprod[int(start)]
    # DDIM with eps = 0 rescales by sqrt(ᾱ_final / ᾱ_start): undo that to compare the start latent
    final = scheduler.final_alpha_cumprod
    torch.testing.assert_close(out, expected * (final / alpha).sqrt(), atol=1e-5, rtol=1e-5)


def test_controlnet_residuals_reach_the_unet(backend):
    prompt, negative = backend.encode_prompts(["a cat"]), backend.encode_prompts([""])
    image = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(0))
    z = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    point = backend.schedule(10, (8, 8))[3]
    plain = text_denoiser(backend, prompt, negative, 7.0)(z, point)
    controlled = text_denoiser(backend, prompt, negative, 7.0, Control(backend.controlnet, image, 1.0))(z, point)
    muted = text_denoiser(backend, prompt, negative, 7.0, Control(backend.controlnet, image, 0.0))(z, point)
    assert (controlled - plain).abs().max() > 1e-4
    torch.testing.assert_close(muted, plain, atol=1e-6, rtol=1e-6)


def test_a_nan_stops_sampling_with_a_clear_error(backend):
    schedule = backend.schedule(4, (8, 8))  # timesteps 751, 501, 251, 1
    broken = lambda z, point: torch.full_like(z, float("nan")) if int(point.timestep) < 500 else torch.zeros_like(z)  # noqa: E731
    with pytest.raises(NumericalError, match=r"step 3 of 4 .*NaN or Inf") as error:
        sample(broken, torch.randn(1, 4, 8, 8), schedule, backend.prediction.step)
    assert "lr" in str(error.value) and "--lr" in error.value.render(lambda name: "--" + name.replace("_", "-"))


def test_a_nan_ad_loss_names_the_ad_step(backend, monkeypatch):
    import adcli.engine.guidance as guidance

    monkeypatch.setattr(
        guidance, "distillation_losses", lambda target, *a, **k: target[max(target)].out.sum().reshape(1) * float("nan")
    )
    with pytest.raises(NumericalError, match=r"AD step at timestep \d+ failed: the loss became nan"):
        _sample(backend, iterations=2)


def test_mixed_precision_unet_passes_with_fp32_latents(monkeypatch):
    """UNet (and ControlNet) passes run in the backend's half precision; the optimized latent stays fp32."""
    backend = load_backend("tiny", device=torch.device("cpu"), dtype=torch.bfloat16, controlnet="tiny")
    dtypes = []
    original = backend.denoiser.forward
    monkeypatch.setattr(backend.denoiser, "forward", lambda x, *a, **k: dtypes.append(x.dtype) or original(x, *a, **k))
    control = Control(backend.controlnet, torch.rand((1, 3, 64, 64)), 1.0)
    denoise = text_denoiser(backend, backend.encode_prompts(["a cat"]), negative_conditioning(backend, ""), 7.0, control)
    reference = _reference()
    out = distill_by_sampling(
        backend, denoise, Guide(reference=reference, content=reference, content_weight=0.15), _config(2, 2, lr=0.015),
        size=SIZE, generator=torch.Generator().manual_seed(0), init=reference,
    )
    assert set(dtypes) == {torch.bfloat16} and len(dtypes) == 2 * (1 + 1 + 2)
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())


def test_denoiser_and_hook_take_latents_of_any_size(backend):
    """MultiDiffusion will call both per window: one step's reference features serve a window of
    another shape than the reference."""
    schedule = backend.schedule(10, (8, 8))
    hook = ADGuidance(backend, Guide(reference=_reference()), torch.Generator().manual_seed(0), _config(10, 1))
    denoise = text_denoiser(backend, backend.encode_prompts(["a cat"]), negative_conditioning(backend, ""), 7.0)
    window = torch.randn((1, 4, 8, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eps = denoise(window, schedule[4])
    with hook.installed():
        step = hook.prepare(schedule[5])
        out = hook.apply(window, step)
    assert eps.shape == out.shape == window.shape and not torch.equal(out, window)
