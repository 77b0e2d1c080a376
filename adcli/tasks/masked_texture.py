"""Masked (controllable) texture synthesis (paper Eqs. 11–12, Sec. 4.1 and App. B).

The source label map labels the reference texture; the target label map lays out the output.
The output takes the target map's shape and the reference keeps its own, each with the longer
side of ``--size``. The init image (each target region filled with random same-labelled source
pixels) is both the starting latent and the content reference (λ = ``mask_content_weight``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.images import open_rgb, to_tensor
from adcli.engine.masks import LabelMaps, MaskedAttention, fill_from_source, same_aspect
from adcli.engine.models import Backend
from adcli.errors import InputError
from adcli.presets import ResolvedSettings, parse_size
from adcli.tasks.common import decode_to_image, require_files, with_tiling
from adcli.tasks.jobs import Job, JobContext, Reporter, progress_callback


def fit_longer_side(shape: tuple[int, int], longer: int) -> tuple[int, int]:
    """(width, height) with the aspect of ``shape`` and the longer side ``longer``, multiples of 8."""
    width, height = shape
    scale = longer / max(width, height)
    return tuple(max(8, round(side * scale / 8) * 8) for side in (width, height))  # type: ignore[return-value]


def _prepared(reference: Path, source_mask: Path, target_mask: Path, longer: int) -> tuple:
    """The label maps checked against the reference, and the output/reference sizes and pixels."""
    maps = LabelMaps.read(source_mask, target_mask)
    source_shape = (int(maps.source.shape[1]), int(maps.source.shape[0]))
    reference_image = open_rgb(reference)
    reference_shape = reference_image.size
    if not same_aspect(source_shape, reference_shape):
        raise InputError(
            f"source mask {source_mask} is {source_shape[0]}x{source_shape[1]} but reference {reference} is "
            f"{reference_shape[0]}x{reference_shape[1]}: the source map must label that image (same aspect ratio)"
        )
    out_size = fit_longer_side((int(maps.target.shape[1]), int(maps.target.shape[0])), longer)
    ref_size = fit_longer_side(reference_shape, longer)
    return maps, out_size, ref_size, to_tensor(reference_image, ref_size)  # pixels: (1, 3, H, W) in [-1, 1]


def masked_texture_job(
    resolved: ResolvedSettings, inputs: dict[str, Any], context: JobContext, numbered: bool | None = None
) -> Job:
    """Masked texture number ``image_index``: the maps are checked (once per run) before anything loads.

    ``inputs``: ``reference`` (one image), ``source_mask``, ``target_mask``, ``image_index``; what
    the metadata records beside them (labels, sizes) is derived again, so ``adcli rerun`` works.
    """
    settings = resolved.settings
    source_mask, target_mask = inputs.get("source_mask"), inputs.get("target_mask")
    if source_mask is None or target_mask is None:
        given, needed = ("--source-mask", "--target-mask") if source_mask else ("--target-mask", "--source-mask")
        raise InputError(f"{given} needs {needed} too: masked synthesis takes both label maps")
    if settings.mode == "sample":
        raise InputError("masked texture synthesis (--source-mask/--target-mask) runs by optimization: drop --mode sample")
    source_mask, target_mask = Path(source_mask), Path(target_mask)
    references = require_files([Path(r) for r in inputs["reference"]], "reference image")
    if len(references) != 1:
        raise InputError(
            f"masked synthesis takes one --reference (the texture that --source-mask labels), got {len(references)}"
        )
    reference = references[0]
    require_files([source_mask], "source mask")
    require_files([target_mask], "target mask")
    longer = max(parse_size(settings.size))
    maps, out_size, ref_size, reference_pixels = context.once(
        ("masked", str(reference), str(source_mask), str(target_mask), longer),
        lambda: _prepared(reference, source_mask, target_mask, longer),
    )
    index = int(inputs.get("image_index") or 0)

    def make(backend: Backend, seed: int) -> Image.Image:
        generator = torch.Generator("cpu").manual_seed(seed)
        init = fill_from_source(reference_pixels, maps, out_size, generator)
        init_latents = backend.encode_images(init)
        guide = Guide(
            reference=backend.encode_images(reference_pixels),
            content=init_latents,
            content_weight=settings.mask_content_weight,
            mask_fn=MaskedAttention(maps, backend.device),
        )
        latents = distill_by_optimization(
            backend, init_latents, guide, layers=settings.layers,
            iterations=settings.iterations, lr=settings.lr, callback=progress_callback(context.reporter),
        )
        return decode_to_image(backend, latents)

    numbered = index > 0 if numbered is None else numbered
    name = f"{reference.stem}_{target_mask.stem}" + (f"_{index}" if numbered else "")
    return Job(
        name=name,
        inputs={
            "reference": [str(reference)],
            "source_mask": str(source_mask),
            "target_mask": str(target_mask),
            "labels": list(maps.colours),
            "output_size": f"{out_size[0]}x{out_size[1]}",
            "reference_size": f"{ref_size[0]}x{ref_size[1]}",
            "image_index": index,
        },
        make=with_tiling(make, settings.tile),
        key=f"{name}#{index}",
        steps=settings.iterations,
        fields={"reference": reference.stem, "image_index": index, "target_mask": target_mask.stem},
        resolved=resolved,
        files=[reference, source_mask, target_mask],
    )


def masked_texture_jobs(
    resolved: ResolvedSettings,
    references: list[Path],
    source_mask: Path | None,
    target_mask: Path | None,
    reporter: Reporter,
    num_images: int = 1,
) -> list[Job]:
    """Check the maps against the reference before anything loads, then one job per image."""
    context = JobContext(reporter)
    inputs = {"reference": references, "source_mask": source_mask, "target_mask": target_mask}
    return [
        masked_texture_job(resolved, {**inputs, "image_index": index}, context, numbered=num_images > 1)
        for index in range(num_images)
    ]
