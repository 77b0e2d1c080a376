"""Style-specific text-to-image (paper Sec. 3.4, Alg. 2): prompts × style → AD-guided samples.

The model loads once and each style, layout and control image is read and encoded once per
run, however many prompts and images there are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from adcli.engine.controlnet import Control, load_control_image
from adcli.engine.distill import Guide
from adcli.engine.models import DEFAULT_MODELS, Backend
from adcli.engine.sampler import distill_by_sampling, negative_conditioning, sdedit_start, text_denoiser
from adcli.errors import InputError
from adcli.presets import ResolvedSettings, parse_size
from adcli.presets.settings import AUTO_SIZE
from adcli.tasks.common import decode_to_image, require_files, with_tiling
from adcli.tasks.jobs import Job, JobContext, Reporter
from adcli.tasks.naming import slug
from adcli.tasks.sources import pair_up, reference_sets


def read_prompts(path: Path) -> list[str]:
    """One prompt per non-empty line of a UTF-8 text file."""
    if not path.is_file():
        raise InputError(f"prompts file {path} does not exist or is not a file: check --prompts")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"prompts file {path} cannot be read as UTF-8 text ({error})") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise InputError(f"prompts file {path} has no prompts: write one prompt per line")
    return prompts


def model_for_arch(preset_model: str, arch: str | None) -> str | None:
    """With ``--arch`` and no ``--model``: that architecture's default model, in place of a preset
    default of the other architecture. None keeps the preset's model (then ``--arch`` is a check)."""
    if arch in DEFAULT_MODELS and preset_model in DEFAULT_MODELS.values():
        return DEFAULT_MODELS[arch]
    return None


def output_size(size: str, backend: Backend) -> tuple[int, int]:
    """(width, height): the setting, or for ``auto`` the model's native size (UNet sample size × 8)."""
    if size != AUTO_SIZE:
        return parse_size(size)
    sample = backend.unet.config.sample_size
    height, width = (sample, sample) if isinstance(sample, int) else sample
    return width * backend.vae_scale_factor, height * backend.vae_scale_factor


def _check_inputs(settings, styles: list[Path], layout: Path | None, control: Path | None) -> None:
    """Every input file exists and a ControlNet has its image, before any model loads."""
    require_files(styles, "style image")
    if layout is not None:
        require_files([layout], "layout image")
    if settings.controlnet and control is None:
        raise InputError(f"ControlNet {settings.controlnet} needs a control image: pass --control IMAGE")
    if control is not None:
        if not settings.controlnet:
            raise InputError("--control needs a ControlNet: pass --controlnet ID_OR_PATH (or tiny with a tiny model)")
        require_files([control], "control image")


def t2i_job(resolved: ResolvedSettings, inputs: dict[str, Any], context: JobContext) -> Job:
    """Image number ``image_index`` of one prompt in the style of its style set (several styles:
    token-axis concat), optionally from a layout and with a ControlNet image. Sampling jobs run
    alone (no ``group``): each has its own prompt and noise schedule."""
    settings = resolved.settings
    prompt = str(inputs["prompt"])
    styles = [Path(s) for s in inputs["style"]]
    layout = None if inputs.get("layout") is None else Path(inputs["layout"])
    control = None if inputs.get("control") is None else Path(inputs["control"])
    index = int(inputs.get("image_index") or 0)
    _check_inputs(settings, styles, layout, control)
    if control is not None and settings.size != AUTO_SIZE:
        size = parse_size(settings.size)
        context.once(("control", str(control), size), lambda: load_control_image(control, size))  # fail before loading the model
    steps_run = settings.steps - (sdedit_start(settings.steps, settings.strength) if layout else 0)

    def make(backend: Backend, seed: int):
        size = output_size(settings.size, backend)
        guide = Guide(
            reference=context.latents.stack(backend, styles, size),
            content=None if layout is None else context.latents.get(backend, layout, size),
            content_weight=settings.content_weight if layout is not None else 0.0,
        )
        conditioning = None
        if control is not None:
            pixels = context.once(("control", str(control), size), lambda: load_control_image(control, size))
            conditioning = Control(backend.controlnet, pixels, settings.control_scale)
        denoise = text_denoiser(
            backend, backend.encode_prompts([prompt]),
            negative_conditioning(backend, settings.negative_prompt), settings.guidance, conditioning,
        )
        latents = distill_by_sampling(
            backend, denoise, guide, size=size, generator=torch.Generator("cpu").manual_seed(seed),
            layers=settings.layers, steps=settings.steps, iterations=settings.ad_iterations, lr=settings.lr,
            adain=settings.adain, init=guide.content, strength=settings.strength, on_step=context.reporter.step,
        )
        return decode_to_image(backend, latents)

    style_stems = "_".join(s.stem for s in styles)
    return Job(
        name=f"{slug(prompt)}_{style_stems}" + (f"_{index}" if index > 0 else ""),
        inputs={
            "prompt": prompt, "style": [str(s) for s in styles], "image_index": index,
            "layout": None if layout is None else str(layout), "control": None if control is None else str(control),
        },
        make=with_tiling(make, settings.tile),
        key=f"{prompt}#{index}",
        steps=steps_run,
        fields={
            "prompt": slug(prompt), "style": style_stems, "image_index": index,
            "layout": "" if layout is None else layout.stem, "control": "" if control is None else control.stem,
        },
        resolved=resolved,
        files=[*styles, *([layout] if layout else []), *([control] if control else [])],
    )


def t2i_jobs(
    resolved: ResolvedSettings,
    prompts: list[str],
    styles: list[Path] | None,
    reporter: Reporter,
    num_images: int = 1,
    layout: Path | None = None,
    control: Path | None = None,
    pair: str = "product",
) -> list[Job]:
    """Jobs from the command line: every prompt with every style job (``pair`` product) or the i-th
    with the i-th (zip), ``num_images`` each. Single style files join every style set; a folder or
    glob gives one style job per image."""
    if not prompts:
        raise InputError("no prompt given: pass a PROMPT, or --prompts FILE with one prompt per line")
    context = JobContext(reporter)
    sets = reference_sets(styles, "style image", reporter.info)
    numbered = [(number, prompt) for number, prompt in enumerate(prompts, 1)]
    jobs = []
    for (number, prompt), style_set in pair_up(numbered, sets, pair, "prompt", "style"):
        for index in range(num_images):
            inputs = {"prompt": prompt, "style": style_set, "image_index": index, "layout": layout, "control": control}
            job = t2i_job(resolved, inputs, context)
            name = f"{job.fields['prompt']}_{job.fields['style']}"
            if len(prompts) > 1:
                name = f"{number:03d}_{name}"
            if num_images > 1:
                name = f"{name}_{index}"
            job.name = name
            jobs.append(job)
    return jobs
