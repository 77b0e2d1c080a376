"""The public Python API: one function per command, over the same settings and task functions
as the CLI. Keywords are the keys of the command's preset (configs/<command>.yaml), with the
same meaning, defaults and checks; images come back as PIL images carrying their settings.

    import adcli
    model = adcli.load_model("tiny")
    image = adcli.style_transfer(model, "photo.jpg", "painting.png", iterations=200, seed=0)
    adcli.save(image, "result.png")

Every command takes ``size`` as ``(width, height)``, ``"WxH"``, an int (the longer side) or
``"auto"``. A bad value raises adcli's own error for it (``PresetError``, ``InputError``,
``ModelLoadError``…: subclasses of ``ValueError``), its message naming the keyword.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from adcli.errors import render
from adcli.outputs.files import METADATA_KEY
from adcli.outputs.metadata import job_metadata
from adcli.presets import LOADING_KEYS, SETTINGS, TASK_KEYS, ResolvedSettings, default_model, load_settings, loading_defaults
from adcli.presets.loader import check_value, closest_key
from adcli.tasks.inputs import ImageSource, as_list
from adcli.tasks.jobs import derive_seed
from adcli.tasks.model import Model, open_model
from adcli.tasks.registry import make_images, task

__all__ = ["Model", "appearance", "expand", "finetune_vae", "from_pipe", "load_model", "save", "style_transfer", "t2i", "texture"]

Callback = Callable[[dict[str, Any]], "bool | None"]


def _unknown(function: str, key: str, valid: Sequence[str]) -> TypeError:
    hint = closest_key(key, valid)
    return TypeError(f"{function}() got an unexpected keyword argument {key!r}" + (f"; did you mean {hint!r}?" if hint else ""))


def _parse_lora(value: Any) -> str:
    """``"ink.safetensors:0.8"``, ``("ink.safetensors", 0.8)`` or ``"ink.safetensors"`` → ``"path:scale"`` text."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return f"{value[0]}:{float(value[1])}"
    return str(value)


def load_model(model: str | None = None, **options: Any) -> Model:
    """Load a model once for any number of calls: a hub id, a local diffusers folder, a single
    ``.safetensors`` checkpoint, or ``"tiny"`` / ``"tiny-sdxl"``. With no model, the default
    model of ``arch`` (``load_model(arch="sdxl")``), else the built-in presets' (SD1.5).

    Keywords: ``vae``, ``model_config``, ``loras`` (``[(path, scale), …]`` or ``"path:scale"``),
    ``controlnet``, ``arch``, ``dtype`` (bf16/fp16/fp32), ``device`` (auto/cpu/cuda[:N]),
    ``compile``, ``quantize`` (none/int8/fp8/nf4), ``low_vram`` — the loading keys of the presets, with
    their defaults. A bad value or a model that cannot be loaded raises adcli's error for it (a
    ``ValueError``). What a small GPU's memory plan chose is a ``UserWarning`` (and ``model.notes``).
    """
    valid = [key for key in LOADING_KEYS if key != "model"]
    values: dict[str, Any] = loading_defaults()
    for key, value in options.items():
        if key not in valid:
            raise _unknown("load_model", key, valid)
        if key == "loras":
            value = tuple(_parse_lora(item) for item in as_list(value))
        values[key] = check_value(SETTINGS[key], value, "load_model")
    values["model"] = check_value(SETTINGS["model"], model, "load_model") if model is not None else default_model(values.get("arch"))
    loaded = open_model(values)
    for note in loaded.notes:  # what a small GPU's memory plan chose (the CLI prints it)
        warnings.warn(render(note), UserWarning, stacklevel=2)
    return loaded


def from_pipe(pipe: Any) -> Model:
    """A model over a diffusers ``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline`` the caller
    already has: its modules are shared (no copy, no reload), whatever was loaded into them, and
    each call leaves the pipeline exactly as it was (processors, padding, gradients, devices)."""
    from adcli.engine.pipes import backend_from_pipe, borrowed

    name = getattr(getattr(pipe, "config", None), "_name_or_path", None) or type(pipe).__name__
    backend = backend_from_pipe(pipe, source=str(name))
    loaded = {"model": str(name), "arch": backend.arch.name}
    return Model(backend, loaded, session=lambda: borrowed(backend))


def _size_text(size: Any) -> Any:
    """``size`` as the presets write it: ``(512, 384)`` → ``"512x384"``, ``768`` → ``"768"``."""
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(side, int) and not isinstance(side, bool) for side in size):
        return "{}x{}".format(*size)
    if isinstance(size, int) and not isinstance(size, bool):
        return str(size)
    return size


def _resolve(name: str, function: str, model: Model, given: dict[str, Any]) -> ResolvedSettings:
    """The command's settings: built-in preset (with the model's architecture's values) ← the
    model's loading settings ← ``given``."""
    if "size" in given:
        given = {**given, "size": _size_text(given["size"])}
    keys = [key for key in TASK_KEYS[name] if not SETTINGS[key].loading and not SETTINGS[key].run_option]
    for key in given:
        if key in TASK_KEYS[name] and SETTINGS[key].run_option:
            raise TypeError(f"{function}(): {key} is a command-line run option; watch a run with callback= instead")
        if key in TASK_KEYS[name] and SETTINGS[key].loading:
            raise TypeError(f"{function}(): {key} is chosen when the model loads: adcli.load_model(..., {key}=...)")
        if key not in keys:
            raise _unknown(function, key, keys)
    # the model's own loading settings, so that the image records what it was made with
    loaded = {key: model.loaded[key] for key in LOADING_KEYS if key in TASK_KEYS[name] and model.loaded.get(key) is not None}
    resolved = load_settings(name, None, {**loaded, **given}, source=f"adcli.{function}()", arch=model.preset_arch)
    return dataclasses.replace(resolved, overrides={k: v for k, v in resolved.overrides.items() if k in given})


def _stop_watch(callback: Callback | None) -> tuple[Callable[[dict[str, Any]], bool | None] | None, dict[str, Any]]:
    """The engine's callback around the user's; ``state["stopped_at"]`` is set when it returned False."""
    state: dict[str, Any] = {}
    if callback is None:
        return None, state

    def watch(info: dict[str, Any]) -> bool | None:
        if callback(info) is False:
            state["stopped_at"] = info["step"]
            return False
        return None

    return watch, state


def _run(name: str, model: Model, resolved: ResolvedSettings, items: list[dict[str, Any]], callback: Callback | None,
         options: list[dict[str, Any]] | None = None) -> list[Image.Image]:
    """Each item as the CLI makes one job: its seed derived the same way, alone, with its metadata.
    ``options``: one mapping per item of what only the API gives the run function (t2i's start latents)."""
    spec = task(name)
    watch, state = _stop_watch(callback)
    images, notes = [], []
    for number, item in enumerate(items):
        if "stopped_at" in state:
            break
        inputs = spec.inputs.of(item)
        job = spec.job(resolved, inputs, None, notes.append)
        for note in dict.fromkeys(notes):  # a remark on the call (an exact size it cannot keep), once
            warnings.warn(render(note), UserWarning, stacklevel=3)
        notes.clear()
        seed = derive_seed(resolved.settings.seed, job.key)
        extra = {key: [value] for key, value in (options[number] if options else {}).items()}
        image = make_images(model, name, [inputs], resolved.settings, [seed], watch, **extra)[0]
        metadata = model.record(job_metadata(resolved, job.inputs, list(job.files), seed), image)
        if extra.get("latents") is not None and extra["latents"][0] is not None:
            metadata["start_latents_sha256"] = tensor_digest(extra["latents"][0])  # not the seed's noise: a rerun cannot redo it
        if "stopped_at" in state:
            metadata["stopped_at_step"] = state["stopped_at"]
        image.info[METADATA_KEY] = json.dumps(metadata, sort_keys=True)
        images.append(image)
    return images


def style_transfer(model: Model, content: ImageSource, style: ImageSource | Sequence[ImageSource], *,
                   callback: Callback | None = None, **settings: Any) -> Image.Image:
    """``content`` repainted in the style of ``style`` (one image or several, distilled together)."""
    resolved = _resolve("style-transfer", "style_transfer", model, settings)
    return _run("style-transfer", model, resolved, [{"content": content, "style": as_list(style)}], callback)[0]


def appearance(model: Model, structure: ImageSource, appearance: ImageSource | Sequence[ImageSource], *,
               callback: Callback | None = None, **settings: Any) -> Image.Image:
    """``structure`` with the appearance (colours, materials) of ``appearance``."""
    resolved = _resolve("appearance", "appearance", model, settings)
    return _run("appearance", model, resolved, [{"structure": structure, "appearance": as_list(appearance)}], callback)[0]


def texture(model: Model, reference: ImageSource | Sequence[ImageSource], *, num_images: int = 1,
            source_mask: ImageSource | None = None, target_mask: ImageSource | None = None,
            callback: Callback | None = None, **settings: Any) -> list[Image.Image]:
    """``num_images`` new textures like ``reference``; with label maps, masked synthesis."""
    resolved = _resolve("texture", "texture", model, settings)
    masks = {"source_mask": source_mask, "target_mask": target_mask} if source_mask is not None or target_mask is not None else {}
    items = [{"reference": as_list(reference), "image_index": index, **masks} for index in range(_count(num_images))]
    return _run("texture", model, resolved, items, callback)


def t2i(model: Model, prompt: str, style: ImageSource | Sequence[ImageSource], *, num_images: int = 1,
        layout: ImageSource | None = None, control: ImageSource | None = None, latents: Any = None,
        callback: Callback | None = None, **settings: Any) -> list[Image.Image]:
    """``num_images`` images of ``prompt`` in the style of ``style`` (AD-guided sampling).

    ``latents``: the start latents instead of each image's seeded noise — the very tensor the model
    family's diffusers pipeline takes as ``latents=`` (FLUX: packed, (B, h/2·w/2, 64); SD3.5, SD1.5,
    SDXL: (B, C, h, w)), one item per image (``num_images`` of them).
    """
    resolved = _resolve("t2i", "t2i", model, settings)
    count = _count(num_images)
    items = [
        {"prompt": prompt, "style": as_list(style), "image_index": index, "layout": layout, "control": control}
        for index in range(count)
    ]
    options = None
    if latents is not None:
        if len(latents) != count:
            raise ValueError(f"latents holds {len(latents)} start latents for num_images={count}: give one per image")
        options = [{"latents": latents[index : index + 1]} for index in range(count)]
    return _run("t2i", model, resolved, items, callback, options)


def expand(model: Model, reference: ImageSource | Sequence[ImageSource], *, callback: Callback | None = None,
           **settings: Any) -> Image.Image:
    """The texture of ``reference`` grown to ``size`` (``(width, height)`` or ``"WxH"``)."""
    resolved = _resolve("expand", "expand", model, settings)
    return _run("expand", model, resolved, [{"reference": as_list(reference), "image_index": 0}], callback)[0]


def finetune_vae(model: Model, references: ImageSource | Sequence[ImageSource], output: str | Path, *,
                 overwrite: bool = False, callback: Callback | None = None, **settings: Any) -> Path:
    """Fine-tune a copy of ``model``'s VAE decoder on ``references``; save it as a folder for ``vae=``."""
    from adcli.tasks.finetune_vae import finetune_vae as run_finetune

    resolved = _resolve("finetune-vae", "finetune_vae", model, settings)
    vae = copy.deepcopy(model.backend.vae)  # the model's own VAE stays as it is
    watch, _ = _stop_watch(callback)
    run_finetune(vae, as_list(references), resolved.settings, Path(output), overwrite, resolved, watch)
    return Path(output)


def save(image: Image.Image, path: str | Path, *, quality: int = 95, overwrite: bool = False) -> Path:
    """Write ``image`` as PNG, JPEG or WebP (by suffix) with its adcli settings, atomically."""
    from adcli.outputs.files import write_image

    metadata = json.loads(image.info[METADATA_KEY]) if METADATA_KEY in image.info else {}
    return write_image(image, Path(path), metadata, overwrite=overwrite, quality=quality)


def tensor_digest(tensor: Any) -> str:
    """SHA-256 of a tensor's values (fp32, C order) and shape: what an image records of given start latents."""
    import hashlib

    import numpy as np
    import torch

    array = np.ascontiguousarray(torch.as_tensor(tensor).detach().float().cpu().numpy())
    return hashlib.sha256(str(array.shape).encode() + array.tobytes()).hexdigest()


def _count(num_images: int) -> int:
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"num_images must be a whole number of at least 1, got {num_images!r}")
    return num_images
