"""AD-guided sampling (paper Sec. 3.4, Alg. 2) in sigma space: one loop for every architecture.

In k-diffusion's shape: a :class:`~adcli.engine.schedule.Schedule` (noise levels and the
denoiser's timestep at each), a *denoiser* ``out = denoise(z, point)`` (the model's prediction
with guidance applied; ``backend.prediction.denoised`` turns it into the denoised estimate x₀),
and a pure *step* ``z' = step(z, out, σ, σ')`` — DDIM (eta 0) for eps/v models, Euler for flow
matching, chosen by the model's prediction type. The loop (:func:`sample`) knows
nothing of prompts, ControlNet or AD: after each step it calls a *hook*
``z = after_step(z, point, report)`` with the latent and the schedule point it is now at.
Guidance is added by wrapping the denoiser (:func:`text_denoiser`: prompt, classifier-free or
embedded guidance, ControlNet), AD by the hook (:class:`~adcli.engine.guidance.ADGuidance`);
both take latents of any spatial size, so MultiDiffusion can call them per window.

The last step lands on the schedule's final point (DDIM: the final ᾱ, timestep 0; flow: σ 0)
and the AD hook still runs there, as the official code does after every step: the last AD
iterations act on the (nearly) clean latent that gets decoded.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adcli.engine.backend import Backend, Conditioning
from adcli.engine.config import SamplingConfig
from adcli.engine.controlnet import Control
from adcli.engine.features import Guide
from adcli.engine.config import SamplingConfig, sdedit_start
from adcli.engine.guidance import ADGuidance, IterationReport
from adcli.engine.prediction import Step
from adcli.engine.progress import Progress, ProgressCallback
from adcli.engine.schedule import Point, Schedule
from adcli.errors import NumericalError, setting

# (latents (B, C, h, w) fp32 at a schedule point, the point) → the model's prediction there (ε, v),
# guidance applied, (B, C, h, w) fp32. ``backend.prediction.denoised`` gives the denoised estimate.
Denoiser = Callable[[torch.Tensor, Point], torch.Tensor]
# (latents after a step, the schedule point they are now at, report) → latents. The hook calls
# ``report(latents, ad_iteration, ad_iterations, losses)`` after each of its iterations and returns
# at once when that returns False.
StepHook = Callable[[torch.Tensor, Point, IterationReport], torch.Tensor]


def require_finite(latents: torch.Tensor, step: int, total: int, point: Point) -> None:
    """Stop with :class:`NumericalError` once the latent holds a NaN or Inf (one host sync)."""
    if not bool(torch.isfinite(latents).all()):
        raise NumericalError(
            f"sampling diverged at step {step} of {total} (timestep {int(point.timestep)}): the latent became "
            f"NaN or Inf; try a smaller {setting('lr')}, fewer {setting('ad_iterations')}, or {setting('dtype')} fp32"
        )


def sample(
    denoise: Denoiser,
    latents: torch.Tensor,
    schedule: Schedule,
    step: Step,
    after_step: StepHook | None = None,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """From ``latents`` at ``schedule[0]`` down the schedule, one ``step`` per interval; ``after_step`` after each.

    ``callback`` gets ``{step, total, loss, losses, latents, ad_iteration, ad_iterations}`` after
    each of the hook's iterations, or once per step (``ad_iteration`` 0) without a hook; when it
    returns False the loop returns the latents it was given. Stops with :class:`NumericalError`
    when the latent stops being finite (checked once per step), so that a diverged image is
    reported instead of being decoded to a black picture.
    """
    z = latents.float()
    total = schedule.steps
    progress = Progress(callback, total)
    for index in range(total):
        here, there = schedule[index], schedule[index + 1]
        with torch.no_grad():
            z = step(z, denoise(z, here), here.sigma, there.sigma)
        if after_step is not None:
            def report(latents: torch.Tensor, ad_iteration: int, ad_iterations: int, losses: list[float] | None, **extra) -> bool:
                return progress.report(index + 1, latents, losses, ad_iteration=ad_iteration, ad_iterations=ad_iterations, **extra)

            z = after_step(z, there, report)
            if progress.stopped:
                return z
        require_finite(z, index + 1, total, here)
        if after_step is None and not progress.report(index + 1, z, ad_iteration=0, ad_iterations=0):
            return z
    return z


def negative_conditioning(backend: Backend, negative_prompt: str) -> Conditioning:
    """The negative prompt encoded as it is, ``""`` included, through every text encoder.

    diffusers' SDXL pipeline swaps an empty negative prompt for zero embeddings; the paper's
    reference implementation encodes the empty string, and so do we (for every architecture).
    """
    return backend.encode_prompts([negative_prompt])


def text_denoiser(
    backend: Backend,
    prompt: Conditioning,
    negative: Conditioning | None = None,
    guidance: float = 1.0,
    control: Control | None = None,
) -> Denoiser:
    """The model's prediction for ``prompt``: with classifier-free guidance when the architecture
    uses it, ``negative`` is given and ``guidance`` > 1 (the raw predictions mixed as the pipelines
    do, ``uncond + g·(cond − uncond)``); with ``guidance`` as the denoiser's input when the
    architecture embeds it instead; with a ControlNet's residuals added when ``control`` is given."""
    arch = backend.arch
    use_cfg = arch.classifier_free_guidance and negative is not None and guidance > 1
    embedded = None if arch.classifier_free_guidance else guidance

    def denoise(latents: torch.Tensor, point: Point) -> torch.Tensor:
        batch = latents.shape[0]
        parts = [negative.repeat(batch), prompt.repeat(batch)] if use_cfg else [prompt.repeat(batch)]
        model_in = torch.cat([latents] * len(parts))  # (P·B, C, h, w)
        inputs = backend.model_inputs(Conditioning.cat(parts), model_in.shape[0], tuple(latents.shape[-2:]), embedded)
        output = backend.predict(model_in, point.timestep, inputs, control).float()
        if not use_cfg:
            return output
        uncond, cond = output.chunk(2)
        return uncond + guidance * (cond - uncond)

    return denoise


def distill_by_sampling(
    backend: Backend,
    denoise: Denoiser,
    guide: Guide,
    config: SamplingConfig,
    *,
    size: tuple[int, int],
    generator: torch.Generator,
    init: torch.Tensor | None = None,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """Algorithm 2: sampling with ``config.ad_iterations`` AD iterations after each step.

    The start is Gaussian noise for an image of ``size`` = (width, height), drawn on the CPU
    from ``generator``; with ``init`` (a layout latent) it is ``init`` noised to the SDEdit start
    point for ``config.strength``. 0 AD iterations is plain sampling with the same seed.
    ``callback``: see :func:`sample`.
    """
    noise = backend.latent_noise(size, generator)
    schedule = backend.schedule(config.steps, tuple(noise.shape[-2:]))
    latents = noise  # the start of a variance-preserving or flow schedule is the noise itself
    if init is not None:
        schedule = schedule.starting_at(sdedit_start(config.steps, config.strength))
        latents = backend.prediction.noised(init.to(backend.device).float(), noise, schedule.sigmas[0])
    hook = None
    if config.ad_iterations > 0:
        hook = ADGuidance(backend, guide.to(backend.device), generator, config)
    return sample(denoise, latents, schedule, backend.prediction.step, hook, callback)
