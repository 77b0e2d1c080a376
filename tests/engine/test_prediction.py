"""The sampler's maths in sigma space: prediction types, their noising rules and their pure steps,
checked against diffusers' own schedulers (independent implementations) and by hand."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

from adcli.engine.archs.tiny_unets import tiny_scheduler
from adcli.engine.prediction import Epsilon, FlowMatching, VPrediction, euler_step
from adcli.engine.schedule import Schedule


def _tensors(*shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for shape in shapes]


def _sigma(alpha: torch.Tensor) -> torch.Tensor:
    """σ of a DDPM ᾱ, as the UNet schedules compute it: √((1 − ᾱ)/ᾱ) in float64."""
    alpha = alpha.double()
    return ((1 - alpha) / alpha).sqrt()


@pytest.mark.parametrize("prediction_type, prediction", [("epsilon", Epsilon()), ("v_prediction", VPrediction())])
def test_ddim_step_is_diffusers_ddim_step(prediction_type, prediction):
    """From the model's raw output, one step σ(t) → σ(t − 250) is diffusers' DDIM step (eta 0),
    to the last bit: the golden images depend on it."""
    scheduler = DDIMScheduler.from_config(tiny_scheduler().config, prediction_type=prediction_type)
    scheduler.set_timesteps(4)  # 751, 501, 251, 1
    x, output = _tensors((2, 4, 8, 8), (2, 4, 8, 8))
    for t, t_next in ((751, 501), (251, 1)):
        expected = scheduler.step(output, torch.tensor(t), x).prev_sample
        sigma, sigma_next = _sigma(scheduler.alphas_cumprod[t]), _sigma(scheduler.alphas_cumprod[t_next])
        assert torch.equal(prediction.step(x, output, sigma, sigma_next), expected)
    # the last step lands on the final ᾱ (timestep 0 with set_alpha_to_one False)
    expected = scheduler.step(output, torch.tensor(1), x).prev_sample
    final = _sigma(scheduler.final_alpha_cumprod)
    assert torch.equal(prediction.step(x, output, _sigma(scheduler.alphas_cumprod[1]), final), expected)


def test_noising_is_diffusers_add_noise():
    scheduler = tiny_scheduler()
    clean, noise = _tensors((3, 4, 8, 8), (3, 4, 8, 8))
    for t in (0, 1, 400, 999):
        expected = scheduler.add_noise(clean, noise, torch.tensor([t]))
        assert torch.equal(Epsilon().noised(clean, noise, _sigma(scheduler.alphas_cumprod[t])), expected)


@pytest.mark.parametrize("prediction", [Epsilon(), VPrediction(), FlowMatching()])
def test_an_exact_prediction_steps_onto_the_same_noise_path(prediction):
    """If the model predicts exactly (the ε and x₀ that made x), a deterministic step lands where
    x₀ noised with the same ε sits at σ_next; and ``denoised`` returns x₀."""
    clean, eps = _tensors((2, 4, 6, 6), (2, 4, 6, 6), seed=1)
    sigma, sigma_next = torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    x = prediction.noised(clean, eps, sigma)
    if isinstance(prediction, FlowMatching):
        output = eps - clean  # v
    elif isinstance(prediction, VPrediction):
        alpha = 1 / (1 + 0.8**2)
        output = alpha**0.5 * eps - (1 - alpha) ** 0.5 * clean
    else:
        output = eps
    torch.testing.assert_close(prediction.denoised(x, output, sigma), clean, atol=1e-5, rtol=1e-5)
    expected = prediction.noised(clean, eps, sigma_next)
    torch.testing.assert_close(prediction.step(x, output, sigma, sigma_next), expected, atol=1e-5, rtol=1e-5)


def test_flow_matching_by_hand_and_as_diffusers_steps_it():
    """x_σ = (1 − σ)·x₀ + σ·ε; Euler x + (σ' − σ)·v; the flow-matching scheduler's step on the same sigmas."""
    clean, noise, v = _tensors((1, 16, 4, 4), (1, 16, 4, 4), (1, 16, 4, 4), seed=2)
    flow = FlowMatching()
    half = torch.tensor(0.5, dtype=torch.float64)
    torch.testing.assert_close(flow.noised(clean, noise, half), 0.5 * clean + 0.5 * noise)
    torch.testing.assert_close(flow.denoised(noise, v, torch.tensor(1.0)), noise - v)
    sigmas = [1.0, 0.75, 0.4, 0.0]
    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(sigmas=sigmas[:-1])
    x, ours = noise.clone(), noise.clone()
    for index, t in enumerate(scheduler.timesteps):
        x = scheduler.step(v, t, x).prev_sample
        here, there = torch.tensor(sigmas[index]), torch.tensor(sigmas[index + 1])
        ours = flow.step(ours, v, here, there)
        torch.testing.assert_close(ours, x, atol=0, rtol=0)
    torch.testing.assert_close(euler_step(noise, v, torch.tensor(1.0), torch.tensor(0.75)), noise - 0.25 * v)


def test_a_schedule_is_points_of_sigma_and_timestep():
    schedule = Schedule(torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64), torch.tensor([900, 500, 0]))
    assert schedule.steps == 2 and schedule.step_timesteps().tolist() == [900, 500]
    assert float(schedule[1].sigma) == 1.0 and int(schedule[1].timestep) == 500
    assert schedule.starting_at(1).sigmas.tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="N \\+ 1"):
        Schedule(torch.tensor([1.0, 0.0]), torch.tensor([1]))


def test_flow_matching_agrees_with_the_flux_and_sd3_building_blocks():
    """The seam's flow prediction and the FLUX/SD3 helpers (engine/archs/flow.py) are one rule."""
    from adcli.engine.archs import flow

    clean, noise, v = _tensors((1, 16, 4, 4), (1, 16, 4, 4), (1, 16, 4, 4), seed=3)
    sigma, sigma_next = torch.tensor(0.7), torch.tensor(0.2)
    assert torch.equal(FlowMatching().noised(clean, noise, sigma), flow.add_flow_noise(clean, noise, sigma))
    assert torch.equal(FlowMatching().step(noise, v, sigma, sigma_next), flow.euler_step(noise, v, sigma, sigma_next))
