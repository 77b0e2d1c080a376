"""Texture synthesis by optimization (paper Sec. 3.2): a noise latent distils the reference(s)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from adcli.engine.distill import Guide, distill_by_optimization
from adcli.engine.models import Backend
from adcli.presets import ResolvedSettings, parse_size
from adcli.tasks.common import decode_to_image, noise_latents
from adcli.tasks.jobs import Job, JobContext, Reporter
from adcli.tasks.sources import reference_sets


def texture_job(resolved: ResolvedSettings, inputs: dict[str, Any], context: JobContext, numbered: bool | None = None) -> Job:
    """Texture number ``image_index`` of a reference set, from its own seed (its noise)."""
    settings = resolved.settings
    size = parse_size(settings.size)
    references = [Path(r) for r in inputs["reference"]]
    index = int(inputs.get("image_index") or 0)

    def make_group(backend: Backend, jobs: list[Job], seeds: list[int]) -> list[Image.Image]:
        # (B, 4, h, w): one noise latent per job, each drawn from that job's seed.
        noise = torch.cat([noise_latents(backend, size, seed) for seed in seeds])
        guide = Guide(reference=context.latents.stack(backend, references, size))
        latents = distill_by_optimization(
            backend, noise, guide, layers=settings.layers,
            iterations=settings.iterations, lr=settings.lr, on_step=context.reporter.step,
        )
        return [decode_to_image(backend, latents[i : i + 1]) for i in range(len(jobs))]

    stem = "_".join(r.stem for r in references)
    numbered = index > 0 if numbered is None else numbered
    job = Job(
        name=f"{stem}_texture_{index}" if numbered else f"{stem}_texture",
        inputs={"reference": [str(r) for r in references], "image_index": index},
        make=lambda backend, seed: make_group(backend, [job], [seed])[0],
        key=f"{stem}#{index}",
        steps=settings.iterations,
        fields={"reference": stem, "image_index": index},
        resolved=resolved,
        files=references,
        group=(resolved.task, tuple(str(r) for r in references), replace(settings, seed=0)),
        make_group=make_group,
    )
    return job


def texture_jobs(
    resolved: ResolvedSettings, references: list[Path], reporter: Reporter, num_images: int = 1
) -> list[Job]:
    """``num_images`` textures per reference set (a folder or glob: one set per image), each from its own seed."""
    context = JobContext(reporter)
    return [
        texture_job(resolved, {"reference": refs, "image_index": index}, context, numbered=num_images > 1)
        for refs in reference_sets(references, "reference image", reporter.info)
        for index in range(num_images)
    ]
