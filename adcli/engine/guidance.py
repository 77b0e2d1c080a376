"""The AD step of guided sampling (paper Sec. 3.4, Alg. 2 lines 7–14), as a hook for the sampler.

After each sampler step to the schedule point σ': noise the reference latent(s) to σ' by the
model's noising rule, optionally AdaIN the latent to them, then a few Adam iterations on the
latent against the AD (+ content) loss, features taken with the empty prompt at σ'. The
reference features of a step are computed once in :meth:`ADGuidance.prepare` and reused by every
iteration — and by every window, for a caller that applies the step to several latents
(MultiDiffusion): it calls ``prepare`` once and ``apply`` per window batch, each inside
``with guidance.installed():``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from adcli.engine.backend import Backend
from adcli.engine.config import SamplingConfig
from adcli.engine.features import Features, FeatureExtractor, Guide, distillation_losses
from adcli.engine.optimize import optimize_latents
from adcli.engine.schedule import Point
from adcli.errors import NumericalError

# report(latents, ad_iteration, ad_iterations, losses or None, **extra) → False to stop: the sampler's
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
    """What one sampling step distils towards: the noised reference latents (R, C, h, w) and the
    reference (and content) features at schedule ``point``. Valid for every latent of that step."""

    point: Point
    noised: torch.Tensor
    reference: Features
    content: Features | None

    @property
    def timestep(self) -> torch.Tensor:
        return self.point.timestep


class ADGuidance:
    """``latents = guidance(latents, point, report)``: the sampler's after-step hook.

    ``generator`` is the run's seeded CPU generator: the reference noise of every step is drawn
    from it, so a run is reproducible on any device. ``config`` gives the layers, the number of
    AD iterations, their learning rate and whether to AdaIN first.
    """

    def __init__(self, backend: Backend, guide: Guide, generator: torch.Generator, config: SamplingConfig):
        self.backend = backend
        self.guide = guide
        self.generator = generator
        self.config = config
        self.extract = FeatureExtractor(backend, config.layers)

    def prepare(self, point: Point) -> StepReference:
        """Noise the reference (and content) latents to ``point`` and extract their features once."""
        guide = self.guide
        use_content = guide.content is not None and guide.content_weight > 0
        if use_content and guide.content.shape[-2:] != guide.reference.shape[-2:]:
            # a reference of its own aspect ratio: noised and passed through the denoiser apart from the content
            noised_reference, noised_content = (self._noised(x, point) for x in (guide.reference, guide.content))
        else:
            clean = torch.cat([guide.reference, guide.content]) if use_content else guide.reference
            noised = self._noised(clean, point)
            count = guide.reference.shape[0]
            noised_reference, noised_content = noised[:count], (noised[count:] if use_content else None)
        at_step = Guide(noised_reference, noised_content, guide.content_weight, guide.mask_fn)
        reference, content = at_step.clean_features(self.extract, point.timestep)
        return StepReference(point, noised_reference, reference, content)

    def _noised(self, clean: torch.Tensor, point: Point) -> torch.Tensor:
        noise = torch.randn(clean.shape, generator=self.generator).to(clean.device)
        return self.backend.prediction.noised(clean, noise, point.sigma)

    def apply(
        self, latents: torch.Tensor, step: StepReference,
        on_iteration: Callable[[int, list[float] | None, torch.Tensor], bool | None] | None = None,
    ) -> torch.Tensor:
        """AdaIN (optional), then the AD iterations: Adam steps of a fresh optimizer on fp32 ``latents``.

        ``on_iteration(ad_iteration, losses, z)`` after each; the losses (one per latent of the
        batch) are read from the device once, at the last iteration. Returning False stops the iterations.
        """
        config = self.config
        if config.adain:
            latents = self.backend.arch.adain(latents.float(), step.noised.float())
        guide = self.guide

        def losses(z: torch.Tensor, _: int) -> torch.Tensor:
            """(B,): several latents (MultiDiffusion windows) each get the gradient they would get alone."""
            target = self.extract(z, step.timestep)
            return distillation_losses(target, step.reference, step.content, guide.content_weight, guide.mask_fn)

        try:
            return optimize_latents(latents, losses, config.ad_iterations, config.lr, on_iteration,
                                    report_every=config.ad_iterations)
        except NumericalError as error:
            raise NumericalError(f"AD step at timestep {int(step.timestep)} failed: {error.args[0]}") from None

    def __call__(self, latents: torch.Tensor, point: Point, report: IterationReport) -> torch.Tensor:
        iterations = self.config.ad_iterations
        with self.installed():
            return self.apply(latents, self.prepare(point), lambda i, losses, z: report(z, i, iterations, losses))

    def installed(self) -> AbstractContextManager:
        """Feature capture on the denoiser; :meth:`prepare` and :meth:`apply` run inside it, denoising outside."""
        return self.extract.installed()
