"""Texture synthesis (paper Sec. 3.2): a noise latent distils the reference(s), by optimization
(Alg. 1, ``mode: optimize``) or by AD-guided DDIM sampling with no prompt and no CFG (Alg. 2, ``mode: sample``)."""

from __future__ import annotations

from pathlib import Path

import torch

from adcli.engine.distill import Guide, distill_by_optimization
from adcli.engine.models import Backend
from adcli.engine.sampler import distill_by_sampling, text_denoiser
from adcli.errors import InputError
from adcli.presets import ResolvedSettings, parse_size
from adcli.tasks.common import LatentCache, decode_to_image, noise_latents, require_files, with_tiling
from adcli.tasks.jobs import Job, Reporter
from adcli.tasks.masked_texture import masked_texture_jobs


def texture_jobs(
    resolved: ResolvedSettings, references: list[Path], reporter: Reporter, num_images: int = 1,
    source_mask: Path | None = None, target_mask: Path | None = None,
) -> list[Job]:
    """``num_images`` textures from the same reference(s), each from its own seed; with label maps, masked."""
    if source_mask is not None or target_mask is not None:
        if resolved.settings.mode == "sample":
            raise InputError("masked texture synthesis (--source-mask/--target-mask) runs by optimization: drop --mode sample")
        return masked_texture_jobs(resolved, references, source_mask, target_mask, reporter, num_images)
    settings = resolved.settings
    size = parse_size(settings.size)
    require_files(references, "reference image")
    cache = LatentCache()
    stem = "_".join(r.stem for r in references)
    steps = settings.steps if settings.mode == "sample" else settings.iterations

    def job_for(index: int) -> Job:
        def make(backend: Backend, seed: int):
            guide = Guide(reference=cache.stack(backend, references, size))
            if settings.mode == "sample":
                latents = distill_by_sampling(
                    backend, text_denoiser(backend, backend.encode_prompts([""])), guide, size=size,
                    generator=torch.Generator("cpu").manual_seed(seed), layers=settings.layers,
                    steps=settings.steps, iterations=settings.ad_iterations, lr=settings.lr,
                    adain=settings.adain, on_step=reporter.step,
                )
                return decode_to_image(backend, latents)
            latents = distill_by_optimization(
                backend, noise_latents(backend, size, seed), guide, layers=settings.layers,
                iterations=settings.iterations, lr=settings.lr, on_step=reporter.step,
            )
            return decode_to_image(backend, latents)

        name = f"{stem}_texture" if num_images == 1 else f"{stem}_texture_{index}"
        inputs = {"reference": [str(r) for r in references], "image_index": index}
        return Job(
            name=name, inputs=inputs, make=with_tiling(make, settings.tile), key=f"{stem}#{index}", steps=steps
        )

    return [job_for(index) for index in range(num_images)]
