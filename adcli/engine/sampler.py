"""AD-guided DDIM sampling (paper Sec. 3.4, Alg. 2): one loop for SD1.5 and SDXL.

The loop (:func:`sample`) knows nothing of prompts, ControlNet or AD. It calls a *denoiser*
``eps = denoise(z, t)`` and, after each DDIM step, a *hook* ``z = after_step(z, t_prev, report)``.
Guidance is added by wrapping the denoiser (:func:`text_denoiser`: prompt, classifier-free
guidance, ControlNet), AD by the hook (:class:`~adcli.engine.guidance.ADGuidance`); both take
latents of any spatial size, so MultiDiffusion can call them per window.

The last step: DDIM takes the latent to the final alpha (``t_prev`` clamps to 0) and the AD
hook still runs there, at timestep 0, as the official code does after every step: the last AD
iterations act on the (nearly) clean latent that gets decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from diffusers import DDIMScheduler

from adcli.engine.controlnet import Control
from adcli.engine.features import Guide
from adcli.engine.config import SamplingConfig, sdedit_start
from adcli.engine.guidance import ADGuidance, IterationReport
from adcli.engine.models import Backend, Conditioning
from adcli.engine.progress import Progress, ProgressCallback
from adcli.errors import NumericalError

# (latents (B, 4, h, w) fp32, timestep) → predicted noise (B, 4, h, w) fp32
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (latents after the DDIM step, the timestep they are now at, report) → latents. The hook calls
# ``report(latents, ad_iteration, loss)`` after each of its iterations and returns at once when
# that returns False.
StepHook = Callable[[torch.Tensor, torch.Tensor, IterationReport], torch.Tensor]


def make_scheduler(backend: Backend, steps: int) -> DDIMScheduler:
    """A fresh DDIM scheduler (eta 0) with the model's noise schedule, set to ``steps`` steps."""
    scheduler = DDIMScheduler.from_config(backend.scheduler.config)
    scheduler.set_timesteps(steps, device=backend.device)
    return scheduler


def previous_timestep(scheduler: DDIMScheduler, t: torch.Tensor) -> torch.Tensor:
    """The timestep DDIM's step from ``t`` lands on (``t − T/steps``), clamped at 0 for the last step."""
    stride = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    return (t - stride).clamp(min=0)


def require_finite(latents: torch.Tensor, step: int, total: int, t: torch.Tensor) -> None:
    """Stop with :class:`NumericalError` once the latent holds a NaN or Inf (one host sync)."""
    if not bool(torch.isfinite(latents).all()):
        raise NumericalError(
            f"sampling diverged at step {step} of {total} (timestep {int(t)}): the latent became "
            f"NaN or Inf; try a smaller --lr, fewer --ad-iterations, or --dtype fp32"
        )


def sample(
    denoise: Denoiser,
    latents: torch.Tensor,
    scheduler: DDIMScheduler,
    timesteps: Sequence[torch.Tensor] | torch.Tensor,
    after_step: StepHook | None = None,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """DDIM from ``latents`` at ``timesteps[0]`` down to the clean latent; ``after_step`` after each step.

    ``callback`` gets ``{step, total, loss, latents, ad_iteration, ad_iterations}`` after each
    of the hook's iterations, or once per step (``ad_iteration`` 0) without a hook; when it returns
    False the loop returns the latents it was given. Stops with :class:`NumericalError` when the
    latent stops being finite (checked once per step), so that a diverged image is reported
    instead of being decoded to a black picture.
    """
    z = latents.float()
    total = len(timesteps)
    progress = Progress(callback, total)
    for index, t in enumerate(timesteps):
        with torch.no_grad():
            eps = denoise(scheduler.scale_model_input(z, t), t)
            z = scheduler.step(eps, t, z).prev_sample
        if after_step is not None:
            def report(latents: torch.Tensor, ad_iteration: int, ad_iterations: int, loss: float | None, **extra) -> bool:
                return progress.report(index + 1, latents, loss, ad_iteration=ad_iteration, ad_iterations=ad_iterations, **extra)

            z = after_step(z, previous_timestep(scheduler, t), report)
            if progress.stopped:
                return z
        require_finite(z, index + 1, total, t)
        if after_step is None and not progress.report(index + 1, z, ad_iteration=0, ad_iterations=0):
            return z
    return z


def negative_conditioning(backend: Backend, negative_prompt: str) -> Conditioning:
    """The negative prompt encoded as it is, ``""`` included, through every text encoder.

    diffusers' SDXL pipeline swaps an empty negative prompt for zero embeddings; the paper's
    reference implementation encodes the empty string, and so do we (SD1.5 and SDXL alike).
    """
    return backend.encode_prompts([negative_prompt])


def text_denoiser(
    backend: Backend,
    prompt: Conditioning,
    negative: Conditioning | None = None,
    guidance: float = 1.0,
    control: Control | None = None,
) -> Denoiser:
    """The UNet's noise prediction for ``prompt``, with classifier-free guidance when ``negative``
    is given and ``guidance`` > 1, and a ControlNet's residuals added when ``control`` is given."""
    use_cfg = negative is not None and guidance > 1

    def denoise(latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        batch = latents.shape[0]
        parts = [negative.repeat(batch), prompt.repeat(batch)] if use_cfg else [prompt.repeat(batch)]
        model_in = torch.cat([latents] * len(parts)).to(backend.dtype)  # (P·B, 4, h, w)
        inputs = backend.unet_inputs(Conditioning.cat(parts), model_in.shape[0], tuple(latents.shape[-2:]))
        if control is not None:
            image = control.image.to(backend.device, backend.dtype).expand(model_in.shape[0], -1, -1, -1)
            down, mid = control.model(
                model_in, t, controlnet_cond=image, conditioning_scale=control.scale, return_dict=False, **inputs
            )
            inputs |= {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        eps = backend.unet(model_in, t, return_dict=False, **inputs)[0].float()
        if not use_cfg:
            return eps
        uncond, cond = eps.chunk(2)
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
    """Algorithm 2: DDIM sampling with ``config.ad_iterations`` AD iterations after each denoising step.

    The start is Gaussian noise for an image of ``size`` = (width, height), drawn on the CPU
    from ``generator``; with ``init`` (a layout latent) it is ``init`` noised to the SDEdit start
    timestep for ``config.strength``. 0 AD iterations is plain DDIM sampling with the same seed.
    ``callback``: see :func:`sample`.
    """
    scheduler = make_scheduler(backend, config.steps)
    timesteps = scheduler.timesteps
    noise = backend.latent_noise(size, generator)
    latents = noise * scheduler.init_noise_sigma
    if init is not None:
        timesteps = timesteps[sdedit_start(config.steps, config.strength):]
        latents = scheduler.add_noise(init.to(backend.device).float(), noise, timesteps[:1])
    hook = None
    if config.ad_iterations > 0:
        hook = ADGuidance(backend, guide.to(backend.device), scheduler, generator, config)
    return sample(denoise, latents, scheduler, timesteps, hook, callback)
