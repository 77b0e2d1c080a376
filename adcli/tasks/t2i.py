"""Style-specific text-to-image (paper Sec. 3.4, Alg. 2): prompts × style → AD-guided samples.

The model loads once and each style, layout and control image is read and encoded once per
run, however many prompts and images there are.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from adcli.engine.controlnet import Control, load_control_image
from adcli.engine.distill import Guide
from adcli.engine.models import DEFAULT_MODELS, Backend
from adcli.engine.sampler import distill_by_sampling, negative_conditioning, sdedit_start, text_denoiser
from adcli.errors import InputError
from adcli.presets import ResolvedSettings, parse_size
from adcli.presets.settings import AUTO_SIZE
from adcli.tasks.common import LatentCache, decode_to_image, require_files, with_tiling
from adcli.tasks.jobs import Job, Reporter


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


def _slug(prompt: str, limit: int = 48) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:limit].strip("-")
    return slug or "no-prompt"


def t2i_jobs(
    resolved: ResolvedSettings,
    prompts: list[str],
    styles: list[Path],
    reporter: Reporter,
    num_images: int = 1,
    layout: Path | None = None,
    control: Path | None = None,
) -> list[Job]:
    """One job per (prompt, image index); every style is distilled at once (token-axis concat)."""
    settings = resolved.settings
    if not prompts:
        raise InputError("no prompt given: pass a PROMPT, or --prompts FILE with one prompt per line")
    require_files(styles, "style image")
    if layout is not None:
        require_files([layout], "layout image")
    if settings.controlnet and control is None:
        raise InputError(f"ControlNet {settings.controlnet} needs a control image: pass --control IMAGE")
    if control is not None:
        if not settings.controlnet:
            raise InputError("--control needs a ControlNet: pass --controlnet ID_OR_PATH (or tiny with a tiny model)")
        require_files([control], "control image")
        if settings.size != AUTO_SIZE:
            load_control_image(control, parse_size(settings.size))  # fail before loading the model
    cache = LatentCache()
    controls: dict[tuple[int, int], torch.Tensor] = {}
    steps_run = settings.steps - (sdedit_start(settings.steps, settings.strength) if layout else 0)
    style_stems = "_".join(s.stem for s in styles)

    def job_for(number: int, prompt: str, index: int) -> Job:
        def make(backend: Backend, seed: int):
            size = output_size(settings.size, backend)
            guide = Guide(
                reference=cache.stack(backend, styles, size),
                content=None if layout is None else cache.get(backend, layout, size),
                content_weight=settings.content_weight if layout is not None else 0.0,
            )
            conditioning = None
            if control is not None:
                if size not in controls:
                    controls[size] = load_control_image(control, size)
                conditioning = Control(backend.controlnet, controls[size], settings.control_scale)
            denoise = text_denoiser(
                backend, backend.encode_prompts([prompt]),
                negative_conditioning(backend, settings.negative_prompt), settings.guidance, conditioning,
            )
            latents = distill_by_sampling(
                backend, denoise, guide, size=size, generator=torch.Generator("cpu").manual_seed(seed),
                layers=settings.layers, steps=settings.steps, iterations=settings.ad_iterations, lr=settings.lr,
                adain=settings.adain, init=guide.content, strength=settings.strength, on_step=reporter.step,
            )
            return decode_to_image(backend, latents)

        name = f"{_slug(prompt)}_{style_stems}"
        if len(prompts) > 1:
            name = f"{number:03d}_{name}"
        if num_images > 1:
            name = f"{name}_{index}"
        inputs = {
            "prompt": prompt, "style": [str(s) for s in styles], "image_index": index,
            "layout": None if layout is None else str(layout), "control": None if control is None else str(control),
        }
        return Job(name=name, inputs=inputs, make=with_tiling(make, settings.tile), key=f"{prompt}#{index}", steps=steps_run)

    return [job_for(number, prompt, index) for number, prompt in enumerate(prompts, 1) for index in range(num_images)]
