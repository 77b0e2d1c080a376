"""Texture synthesis (paper Sec. 3.2): a noise latent distils the reference(s), by optimization
(Alg. 1, ``mode: optimize``) or by AD-guided DDIM sampling with no prompt and no CFG (Alg. 2, ``mode: sample``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from adcli.engine.config import SamplingConfig
from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.models import Backend
from adcli.engine.sampler import distill_by_sampling, text_denoiser
from adcli.presets import ResolvedSettings, parse_size
from adcli.tasks.common import decode_to_image, with_tiling
from adcli.tasks.jobs import Job, JobContext, Reporter, progress_callback
from adcli.tasks.masked_texture import masked_texture_job, masked_texture_jobs
from adcli.tasks.sources import reference_sets


def texture_job(resolved: ResolvedSettings, inputs: dict[str, Any], context: JobContext, numbered: bool | None = None) -> Job:
    """Texture number ``image_index`` of a reference set, from its own seed (its noise); with
    ``source_mask``/``target_mask`` inputs, masked synthesis (tasks/masked_texture.py).

    By optimization, jobs with the same references and settings form a group that ``--batch-size``
    optimizes together; by sampling, each job runs alone.
    """
    if inputs.get("source_mask") is not None or inputs.get("target_mask") is not None:
        return masked_texture_job(resolved, inputs, context, numbered)
    settings = resolved.settings
    size = parse_size(settings.size)
    references = [Path(r) for r in inputs["reference"]]
    index = int(inputs.get("image_index") or 0)

    def optimize_group(backend: Backend, jobs: list[Job], seeds: list[int]) -> list[Image.Image]:
        # (B, 4, h, w): one noise latent per job, each drawn from that job's seed.
        noise = torch.cat([backend.latent_noise(size, torch.Generator("cpu").manual_seed(seed)) for seed in seeds])
        guide = Guide(reference=context.latents.stack(backend, references, size))
        latents = distill_by_optimization(
            backend, noise, guide, layers=settings.layers,
            iterations=settings.iterations, lr=settings.lr, callback=progress_callback(context.reporter),
        )
        return [decode_to_image(backend, latents[i : i + 1]) for i in range(len(jobs))]

    def sample(backend: Backend, seed: int) -> Image.Image:
        guide = Guide(reference=context.latents.stack(backend, references, size))
        config = SamplingConfig(settings.steps, settings.ad_iterations, settings.lr, settings.layers, settings.adain)
        latents = distill_by_sampling(
            backend, text_denoiser(backend, backend.encode_prompts([""])), guide, config, size=size,
            generator=torch.Generator("cpu").manual_seed(seed), callback=progress_callback(context.reporter),
        )
        return decode_to_image(backend, latents)

    sampling = settings.mode == "sample"
    stem = "_".join(r.stem for r in references)
    numbered = index > 0 if numbered is None else numbered
    job = Job(
        name=f"{stem}_texture_{index}" if numbered else f"{stem}_texture",
        inputs={"reference": [str(r) for r in references], "image_index": index},
        make=with_tiling(sample if sampling else lambda backend, seed: optimize_group(backend, [job], [seed])[0], settings.tile),
        key=f"{stem}#{index}",
        steps=settings.steps if sampling else settings.iterations,
        fields={"reference": stem, "image_index": index},
        resolved=resolved,
        files=references,
        group=None if sampling else (resolved.task, tuple(str(r) for r in references), replace(settings, seed=0)),
        make_group=None if sampling else with_tiling(optimize_group, settings.tile),
    )
    return job


def texture_jobs(
    resolved: ResolvedSettings, references: list[Path], reporter: Reporter, num_images: int = 1,
    source_mask: Path | None = None, target_mask: Path | None = None,
) -> list[Job]:
    """``num_images`` textures per reference set (a folder or glob: one set per image), each from its
    own seed; with label maps, masked synthesis."""
    if source_mask is not None or target_mask is not None:
        return masked_texture_jobs(resolved, references, source_mask, target_mask, reporter, num_images)
    context = JobContext(reporter)
    return [
        texture_job(resolved, {"reference": refs, "image_index": index}, context, numbered=num_images > 1)
        for refs in reference_sets(references, "reference image", reporter.info)
        for index in range(num_images)
    ]
