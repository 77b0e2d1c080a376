"""Content-preserving optimization (paper Sec. 3.3): style and appearance transfer share it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.models import Backend
from adcli.presets import ResolvedSettings, parse_size
from adcli.tasks.common import decode_to_image
from adcli.tasks.jobs import Job, JobContext, Reporter, progress_callback
from adcli.tasks.sources import expand_images, pair_up, reference_sets


def transfer_job(
    resolved: ResolvedSettings, inputs: dict[str, Any], context: JobContext, content_role: str, reference_role: str
) -> Job:
    """One content image distilling its reference set (several references: token-axis concat).

    Jobs with the same references and settings share a group: ``--batch-size`` optimizes their
    content latents together, each exactly as it would be alone.
    """
    settings = resolved.settings
    size = parse_size(settings.size)
    content = Path(inputs[content_role])
    references = [Path(r) for r in inputs[reference_role]]

    def make_group(backend: Backend, jobs: list[Job], seeds: list[int]) -> list[Image.Image]:
        # (B, 4, h, w): the batch's content latents are both the starting points and the content targets.
        contents = torch.cat([context.latents.get(backend, Path(job.inputs[content_role]), size) for job in jobs])
        guide = Guide(
            reference=context.latents.stack(backend, references, size),
            content=contents,
            content_weight=settings.content_weight,
        )
        latents = distill_by_optimization(
            backend, contents, guide, layers=settings.layers,
            iterations=settings.iterations, lr=settings.lr, callback=progress_callback(context.reporter),
        )
        return [decode_to_image(backend, latents[i : i + 1]) for i in range(len(jobs))]

    name = "_".join([content.stem] + [r.stem for r in references])
    job = Job(
        name=name,
        inputs={content_role: str(content), reference_role: [str(r) for r in references]},
        make=lambda backend, seed: make_group(backend, [job], [seed])[0],
        key=name,
        steps=settings.iterations,
        fields={content_role: content.stem, reference_role: "_".join(r.stem for r in references)},
        resolved=resolved,
        files=[content, *references],
        group=(resolved.task, tuple(str(r) for r in references), replace(settings, seed=0)),
        make_group=make_group,
    )
    return job


def transfer_jobs(
    resolved: ResolvedSettings,
    contents: list[Path],
    references: list[Path],
    reporter: Reporter,
    content_role: str,
    reference_role: str,
    pair: str = "product",
) -> list[Job]:
    """Jobs from command-line arguments: files, folders or globs, paired by ``pair`` (product or zip)."""
    context = JobContext(reporter)
    images = expand_images(contents, f"{content_role} image", reporter.info)
    sets = reference_sets(references, f"{reference_role} image", reporter.info)
    return [
        transfer_job(resolved, {content_role: content, reference_role: refs}, context, content_role, reference_role)
        for content, refs in pair_up(images, sets, pair, content_role, reference_role)
    ]
