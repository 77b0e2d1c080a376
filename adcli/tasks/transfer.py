"""Style and appearance transfer (paper Sec. 3.3, Alg. 1): a content image's latent distils its
reference set (several references: their keys and values joined on the token axis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.progress import ProgressCallback
from adcli.presets import ResolvedSettings
from adcli.tasks.common import decode_all, native_size, resolve_size, source_files, source_label, source_record
from adcli.tasks.jobs import Job, settings_key
from adcli.tasks.model import Model
from adcli.tasks.roles import TaskRoles

STYLE_TRANSFER = TaskRoles("content", "style")
APPEARANCE = TaskRoles("structure", "appearance")


def run_transfer(
    model: Model, items: Sequence[dict[str, Any]], settings: Any, seeds: Sequence[int],
    callback: ProgressCallback | None = None, roles: TaskRoles = STYLE_TRANSFER,
) -> list[Image.Image]:
    """One picture per item; items with the same references are optimized together, one UNet
    batch per output size, each exactly as it would be alone."""
    backend, cache = model.backend, model.cache
    native = native_size(backend)
    spec = settings.size_spec()
    sizes = [resolve_size(spec, native, cache.image(item[roles.content]).size) for item in items]
    images: list[Image.Image | None] = [None] * len(items)
    for size in dict.fromkeys(sizes):
        indices = [i for i, s in enumerate(sizes) if s == size]
        references = items[indices[0]][roles.reference]
        contents = torch.cat([cache.latents(backend, items[i][roles.content], size) for i in indices])  # (B, 4, h, w)
        guide = Guide(
            reference=cache.references(backend, references, size),
            content=contents,
            content_weight=settings.content_weight,
        )
        latents = distill_by_optimization(
            backend, contents, guide, layers=settings.layers, iterations=settings.iterations, lr=settings.lr,
            callback=callback,
        )
        for i, image in zip(indices, decode_all(backend, latents)):
            images[i] = image
    return images  # type: ignore[return-value]


def transfer_job(task: str, roles: TaskRoles, resolved: ResolvedSettings, inputs: dict[str, Any]) -> Job:
    """The job for one content image and its reference set."""
    content, references = inputs[roles.content], list(inputs[roles.reference])
    reference_stems = "_".join(source_label(r, "reference") for r in references)
    name = f"{source_label(content, roles.content)}_{reference_stems}"
    settings = resolved.settings
    return Job(
        task=task,
        inputs={roles.content: source_record(content), roles.reference: [source_record(r) for r in references]},
        settings=resolved,
        name=name,
        key=name,
        steps=settings.iterations,
        fields={roles.content: source_label(content, roles.content), roles.reference: reference_stems},
        files=source_files([content, *references]),
        group=(task, tuple(map(str, references)), settings_key(settings)),
    )

