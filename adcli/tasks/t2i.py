"""Style-specific text-to-image (paper Sec. 3.4, Alg. 2): a prompt in the style of a reference set.

The model loads once and each style, layout and control image is read and encoded once per
run (the model's image cache), however many prompts and images there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from adcli.engine.controlnet import Control
from adcli.engine.features import Guide
from adcli.engine.images import to_tensor
from adcli.engine.progress import ProgressCallback
from adcli.engine.sampler import distill_by_sampling, negative_conditioning, sdedit_start, text_denoiser
from adcli.errors import InputError
from adcli.presets import ResolvedSettings
from adcli.tasks.common import decode_all, native_size, require_files, resolve_size, source_files, source_label, source_record, tiled
from adcli.tasks.jobs import Job
from adcli.tasks.model import Model
from adcli.outputs.naming import slug
from adcli.tasks.texture import sampling_config


def check_t2i_inputs(settings: Any, inputs: dict[str, Any]) -> None:
    """Every input file exists and a ControlNet has its image, before any model loads."""
    require_files(list(inputs["style"]), "style image")
    if inputs.get("layout") is not None:
        require_files([inputs["layout"]], "layout image")
    control = inputs.get("control")
    if settings.controlnet and control is None:
        raise InputError(f"ControlNet {settings.controlnet} needs a control image: pass --control IMAGE")
    if control is not None:
        if not settings.controlnet:
            raise InputError("--control needs a ControlNet: pass --controlnet ID_OR_PATH (or tiny with a tiny model)")
        require_files([control], "control image")


def run_t2i(
    model: Model, items: Sequence[dict[str, Any]], settings: Any, seeds: Sequence[int],
    callback: ProgressCallback | None = None,
) -> list[Image.Image]:
    """One image per item (prompt, style set, optional layout and control image), each from its seed."""
    backend, cache = model.backend, model.cache
    images = []
    for item, seed in zip(items, seeds):
        layout, control = item.get("layout"), item.get("control")
        size = resolve_size(settings.size_spec(), native_size(backend), None if layout is None else cache.image(layout).size)
        styles = list(item["style"])
        guide = Guide(
            reference=cache.references(backend, styles, size),
            content=None if layout is None else cache.latents(backend, layout, size),
            content_weight=settings.content_weight if layout is not None else 0.0,
        )
        conditioning = None
        if control is not None:
            if backend.controlnet is None:
                raise InputError("--control needs a ControlNet: load the model with one (--controlnet)")
            pixels = (to_tensor(cache.image(control), size) + 1) / 2  # (1, 3, H, W) in [0, 1], resized to the output
            conditioning = Control(backend.controlnet, pixels, settings.control_scale)
        denoise = text_denoiser(
            backend, backend.encode_prompts([str(item["prompt"])]),
            negative_conditioning(backend, settings.negative_prompt), settings.guidance, conditioning,
        )
        with tiled(backend, settings.tile):
            latents = distill_by_sampling(
                backend, denoise, guide, sampling_config(settings, settings.strength if layout is not None else 1.0),
                size=size, generator=torch.Generator("cpu").manual_seed(seed), init=guide.content, callback=callback,
            )
            images.extend(decode_all(backend, latents))
    return images


def t2i_job(resolved: ResolvedSettings, inputs: dict[str, Any]) -> Job:
    """Image number ``image_index`` of one prompt in the style of its style set (several styles:
    token-axis concat), optionally from a layout and with a ControlNet image. Sampling jobs run
    alone (no ``group``): each has its own prompt and noise."""
    settings = resolved.settings
    check_t2i_inputs(settings, inputs)
    prompt = str(inputs["prompt"])
    styles = list(inputs["style"])
    layout, control = inputs.get("layout"), inputs.get("control")
    index = int(inputs.get("image_index") or 0)
    steps = settings.steps - (sdedit_start(settings.steps, settings.strength) if layout is not None else 0)
    style_stems = "_".join(source_label(s, "style") for s in styles)
    return Job(
        task="t2i",
        inputs={
            "prompt": prompt, "style": [source_record(s) for s in styles], "image_index": index,
            "layout": None if layout is None else source_record(layout),
            "control": None if control is None else source_record(control),
        },
        settings=resolved,
        name=f"{slug(prompt)}_{style_stems}" + (f"_{index}" if index > 0 else ""),
        key=f"{prompt}#{index}",
        steps=steps,
        fields={
            "prompt": slug(prompt), "style": style_stems, "image_index": index,
            "layout": "" if layout is None else source_label(layout), "control": "" if control is None else source_label(control),
        },
        files=source_files([*styles, *[p for p in (layout, control) if p is not None]]),
    )
