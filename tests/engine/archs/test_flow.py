"""Flow-matching functions against diffusers' FlowMatchEulerDiscreteScheduler and FluxPipeline helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
from diffusers.pipelines.flux.pipeline_flux import calculate_shift

from adcli.engine.archs.flow import (
    adain_tokens,
    add_flow_noise,
    euler_step,
    flux_image_ids,
    flux_mu,
    flux_sigmas,
    flux_timestep,
    pack_latents,
    scheduler_timestep,
    sd3_sigmas,
    sd3_timestep,
    unpack_latents,
)
from adcli.engine.archs.tiny_transformers import FLUX_DEV_SCHEDULER, FLUX_SCHNELL_SCHEDULER, SD35_SCHEDULER


def flux_pipeline_schedule(config: dict, steps: int, image_tokens: int) -> FlowMatchEulerDiscreteScheduler:
    """The scheduler as FluxPipeline.__call__ sets it (step 5 of the pipeline)."""
    scheduler = FlowMatchEulerDiscreteScheduler(**config)
    c = scheduler.config
    mu = calculate_shift(image_tokens, c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift)
    scheduler.set_timesteps(steps, sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
    return scheduler


@pytest.mark.parametrize("config", [FLUX_DEV_SCHEDULER, FLUX_SCHNELL_SCHEDULER], ids=["dev", "schnell"])
@pytest.mark.parametrize("steps", [1, 4, 28, 50])
@pytest.mark.parametrize("image_tokens", [16, 1024, 1517, 4096])
def test_flux_sigmas_equal_the_pipelines(config, steps, image_tokens):
    scheduler = flux_pipeline_schedule(config, steps, image_tokens)
    sigmas = flux_sigmas(steps, image_tokens, scheduler.config)
    assert torch.equal(sigmas, scheduler.sigmas)
    assert torch.equal(scheduler_timestep(sigmas[:-1], scheduler.config), scheduler.timesteps)


def test_flux_dev_shift_grows_with_image_size_and_schnell_is_unshifted():
    assert flux_mu(256, FLUX_DEV_SCHEDULER) == pytest.approx(0.5)
    assert flux_mu(4096, FLUX_DEV_SCHEDULER) == pytest.approx(1.15)
    small, large = flux_sigmas(8, 256, FLUX_DEV_SCHEDULER), flux_sigmas(8, 4096, FLUX_DEV_SCHEDULER)
    assert (large[1:-1] > small[1:-1]).all()
    plain = torch.cat([torch.from_numpy(np.linspace(1.0, 1 / 4, 4).astype(np.float32)), torch.zeros(1)])
    assert torch.equal(flux_sigmas(4, 4096, FLUX_SCHNELL_SCHEDULER), plain)


@pytest.mark.parametrize("steps", [1, 4, 28, 40])
def test_sd3_sigmas_equal_the_pipelines(steps):
    scheduler = FlowMatchEulerDiscreteScheduler(**SD35_SCHEDULER)
    scheduler.set_timesteps(steps)  # StableDiffusion3Pipeline passes no sigmas and no mu
    sigmas = sd3_sigmas(steps, scheduler.config)
    assert torch.equal(sigmas, scheduler.sigmas)
    assert torch.equal(scheduler_timestep(sigmas[:-1], scheduler.config), scheduler.timesteps)
    assert sigmas[0] == 1 and sigmas[-1] == 0


def test_unsupported_scheduler_options_are_refused():
    with pytest.raises(ValueError, match="use_karras_sigmas"):
        sd3_sigmas(4, SD35_SCHEDULER | {"use_karras_sigmas": True})
    with pytest.raises(ValueError, match="image tokens"):
        sd3_sigmas(4, FLUX_DEV_SCHEDULER)


def test_timesteps_as_the_pipelines_pass_them():
    sigma = flux_sigmas(4, 1024, FLUX_DEV_SCHEDULER)[1]
    t = sigma * 1000
    assert torch.equal(flux_timestep(sigma, 2, torch.bfloat16, FLUX_DEV_SCHEDULER), t.expand(2).to(torch.bfloat16) / 1000)
    assert torch.equal(sd3_timestep(sigma, 3, SD35_SCHEDULER), t.expand(3))


def test_euler_step_and_noising_equal_the_scheduler():
    scheduler = flux_pipeline_schedule(FLUX_DEV_SCHEDULER, 4, 16)
    g = torch.Generator().manual_seed(0)
    x, v, noise = (torch.randn(2, 16, 64, generator=g) for _ in range(3))
    noiser = flux_pipeline_schedule(FLUX_DEV_SCHEDULER, 4, 16)  # no begin index: σ looked up by timestep
    scheduler.set_begin_index(0)
    for i, t in enumerate(scheduler.timesteps):
        expected = scheduler.step(v, t, x, return_dict=False)[0]
        assert torch.equal(euler_step(x, v, scheduler.sigmas[i], scheduler.sigmas[i + 1]), expected)
        noised = noiser.scale_noise(x, t.reshape(1), noise)
        assert torch.equal(add_flow_noise(x, noise, scheduler.sigmas[i]), noised)
    assert torch.equal(add_flow_noise(x, noise, 0.0), x)


def test_packing_and_ids_equal_flux_pipelines():
    latents = torch.randn(2, 16, 8, 6)
    packed = pack_latents(latents)
    assert packed.shape == (2, 12, 64)
    assert torch.equal(packed, FluxPipeline._pack_latents(latents, 2, 16, 8, 6))
    assert torch.equal(unpack_latents(packed, (4, 3)), latents)
    assert torch.equal(unpack_latents(packed, (4, 3)), FluxPipeline._unpack_latents(packed, 64, 48, 8))
    assert torch.equal(flux_image_ids((4, 3)), FluxPipeline._prepare_latent_image_ids(2, 4, 3, "cpu", torch.float32))
    window = flux_image_ids((2, 2), origin=(1, 5))
    assert window[:, 1].tolist() == [1, 1, 2, 2] and window[:, 2].tolist() == [5, 6, 5, 6]


def test_adain_on_packed_tokens_matches_per_channel_statistics():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 12, 64, generator=g, dtype=torch.float64) * 3 + 1
    reference = torch.randn(3, 20, 64, generator=g, dtype=torch.float64) * 0.5 - 2
    out = adain_tokens(tokens, reference, eps=0.0)
    pooled = reference.reshape(-1, 64)
    for b in range(2):
        assert torch.allclose(out[b].mean(0), pooled.mean(0))
        assert torch.allclose(out[b].std(0), pooled.std(0))  # unbiased on both sides
    # eps is added to the source std: a constant channel stays finite
    flat = torch.ones(1, 12, 64, dtype=torch.float64)
    assert torch.isfinite(adain_tokens(flat, reference)).all()
