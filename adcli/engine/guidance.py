"""The AD step of guided sampling (paper Sec. 3.4, Alg. 2 lines 7–14), as a hook for the sampler.

After each DDIM step z_t → z_{t−1}: noise the reference latent(s) to t−1, optionally AdaIN
z_{t−1} to them, then a few Adam iterations on z_{t−1} against the AD (+ content) loss, features
taken with the empty prompt at t−1. The reference features of a step are computed once in
:meth:`ADGuidance.prepare` and reused by every iteration — and by every window, for a caller
that applies the step to several latents (MultiDiffusion): it calls ``prepare`` once and
``apply`` per window batch, each inside ``with guidance.installed():``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler

from adcli.engine.config import SamplingConfig
from adcli.engine.features import Features, FeatureExtractor, Guide, distillation_loss
from adcli.engine.models import Backend
from adcli.engine.optimize import optimize_latents
from adcli.errors import NumericalError

# report(latents, ad_iteration, ad_iterations, loss or None, **extra) → False to stop: the sampler's
# progress, called by the hook after each AD iteration.
IterationReport = Callable[..., bool]


def adain(latents: torch.Tensor, reference: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Give each latent (B, C, h, w) the per-channel mean and std of ``reference`` (R, C, h', w').

    Each latent's statistics are over its own pixels; the reference's are pooled over all R
    references and their pixels, so several references give one target distribution. ``eps``
    1e-6 (added to the std) is the paper's reference implementation's.
    """
    mean = latents.mean(dim=(2, 3), keepdim=True)
    std = latents.std(dim=(2, 3), keepdim=True)
    ref_mean = reference.mean(dim=(0, 2, 3), keepdim=True)
    ref_std = reference.std(dim=(0, 2, 3), keepdim=True)
    return (latents - mean) / (std + eps) * ref_std + ref_mean


@dataclass
class StepReference:
    """What one sampling step distils towards: the noised reference latents (R, 4, h, w) and the
    reference (and content) features at ``timestep``. Valid for every latent of that step."""

    timestep: torch.Tensor
    noised: torch.Tensor
    reference: Features
    content: Features | None


class ADGuidance:
    """``latents = guidance(latents, t_prev, report)``: the sampler's after-step hook.

    ``generator`` is the run's seeded CPU generator: the reference noise of every step is drawn
    from it, so a run is reproducible on any device. ``config`` gives the layers, the number of
    AD iterations, their learning rate and whether to AdaIN first.
    """

    def __init__(
        self, backend: Backend, guide: Guide, scheduler: DDIMScheduler, generator: torch.Generator, config: SamplingConfig
    ):
        self.backend = backend
        self.guide = guide
        self.scheduler = scheduler
        self.generator = generator
        self.config = config
        self.extract = FeatureExtractor(backend, config.layers)

    def prepare(self, timestep: torch.Tensor) -> StepReference:
        """Noise the reference (and content) latents to ``timestep`` and extract their features once."""
        guide = self.guide
        use_content = guide.content is not None and guide.content_weight > 0
        if use_content and guide.content.shape[-2:] != guide.reference.shape[-2:]:
            # a reference of its own aspect ratio: noised and passed through the UNet apart from the content
            noised_reference, noised_content = (self._noised(x, timestep) for x in (guide.reference, guide.content))
        else:
            clean = torch.cat([guide.reference, guide.content]) if use_content else guide.reference
            noised = self._noised(clean, timestep)
            count = guide.reference.shape[0]
            noised_reference, noised_content = noised[:count], (noised[count:] if use_content else None)
        at_step = Guide(noised_reference, noised_content, guide.content_weight, guide.mask_fn)
        reference, content = at_step.clean_features(self.extract, timestep)
        return StepReference(timestep, noised_reference, reference, content)

    def _noised(self, clean: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(clean.shape, generator=self.generator).to(clean.device)
        return self.scheduler.add_noise(clean, noise, timestep.reshape(1))

    def apply(
        self, latents: torch.Tensor, step: StepReference, on_iteration: Callable[[int, float | None, torch.Tensor], bool | None] | None = None
    ) -> torch.Tensor:
        """AdaIN (optional), then the AD iterations: Adam steps of a fresh optimizer on fp32 ``latents``.

        ``on_iteration(ad_iteration, loss, z)`` after each; the loss (per latent of the batch) is
        read from the device once, at the last iteration. Returning False stops the iterations.
        """
        config = self.config
        if config.adain:
            latents = adain(latents.float(), step.noised.float())
        guide = self.guide
        # Several latents (MultiDiffusion windows): sum their losses, so each gets the gradient it
        # would get alone and a batch of windows gives what one window at a time gives.
        batch = latents.shape[0]

        def loss(z: torch.Tensor, _: int) -> torch.Tensor:
            target = self.extract(z, step.timestep)
            return distillation_loss(target, step.reference, step.content, guide.content_weight, guide.mask_fn) * batch

        def per_latent(iteration: int, value: float | None, z: torch.Tensor) -> bool | None:
            return on_iteration(iteration, None if value is None else value / batch, z)

        hook = None if on_iteration is None else per_latent
        try:
            return optimize_latents(latents, loss, config.ad_iterations, config.lr, hook, report_every=config.ad_iterations)
        except NumericalError as error:
            raise NumericalError(f"AD step at timestep {int(step.timestep)} failed: {error}") from None

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor, report: IterationReport) -> torch.Tensor:
        iterations = self.config.ad_iterations
        with self.installed():
            return self.apply(latents, self.prepare(timestep), lambda i, loss, z: report(z, i, iterations, loss))

    def installed(self) -> AbstractContextManager:
        """Feature capture on the UNet; :meth:`prepare` and :meth:`apply` run inside it, denoising outside."""
        return self.extract.installed()
