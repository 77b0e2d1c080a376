"""Model loading: one :class:`~adcli.engine.backend.Backend`, whatever the source and architecture.

Sources: a tiny model (built in code), a local diffusers folder, a single ``.safetensors``
checkpoint, or a Hugging Face hub id (cache and ``HF_HUB_OFFLINE`` honoured). Which architecture
a source is comes from the registry (:mod:`adcli.engine.archs`); the architecture loads its parts.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiffusionPipeline  # loading needs them: imported with the module, not per load

from adcli.engine import archs
from adcli.engine.archs.base import Architecture, Components
from adcli.engine.backend import Backend, backend_from_components, place_backend
from adcli.engine.hub import SINGLE_FILE_SUFFIXES, hub_hint, hub_unavailable, is_hub_id
from adcli.engine.quiet import quiet_loading
from adcli.errors import ModelLoadError, setting

__all__ = ["Backend", "load_backend", "load_model_vae", "load_vae"]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _load_pretrained(source: str, dtype: torch.dtype, local_only: bool, quantize: str | None = None,
                     ) -> tuple[Architecture, Components]:
    """Every component of a diffusers folder or hub id, by the architecture its model index names."""
    with quiet_loading():
        index = DiffusionPipeline.load_config(source, local_files_only=local_only)
    arch = archs.detect_index(index, source)
    archs.check_quantizable(arch, quantize)
    with quiet_loading():
        return arch, arch.load_pretrained(source, dtype, local_only, quantize=quantize)


def _build_tiny(arch: Architecture, model: str, dtype: torch.dtype, quantize: str | None) -> Components:
    """A tiny model, its denoiser quantized in memory as loading would quantize it from files."""
    archs.check_quantizable(arch, quantize)
    # quiet: importing a pipeline's module makes transformers log about image processors, and a cast
    # before quantizing makes diffusers log about modules to keep in float32 (the tiny models have none)
    with quiet_loading():
        components = arch.build_tiny(model)
        if quantize:
            from adcli.engine.archs.quantize import quantize_in_memory

            quantize_in_memory(components[arch.denoiser_name].to(dtype), quantize)
    return components


def _load_components(model: str, model_config: str | None, dtype: torch.dtype, quantize: str | None = None,
                     ) -> tuple[Architecture, Components]:
    tiny = archs.tiny_model_arch(model)
    if tiny is not None:
        return tiny, _build_tiny(tiny, model, dtype, quantize)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"model folder {path} is not a diffusers model (no model_index.json): "
                f"pass a diffusers folder, a .safetensors checkpoint or a hub id"
            )
        try:
            return _load_pretrained(str(path), dtype, local_only=True, quantize=quantize)
        except ModelLoadError:
            raise
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(f"model folder {path} could not be read ({_first_line(error)})") from None
    if path.is_file() or model.endswith(SINGLE_FILE_SUFFIXES):
        if not path.is_file():
            raise ModelLoadError(f"model file {path} does not exist: check the path given as {setting('model')}")
        from adcli.engine.probe import detect_arch

        arch = archs.get(detect_arch(path))
        archs.check_quantizable(arch, quantize)
        components = arch.load_single_file(path, model_config, dtype, _configs_local(model_config), quantize=quantize)
        return arch, components
    if not is_hub_id(model):
        what = "folder" if model.endswith(("/", os.sep)) else "file or folder"
        raise ModelLoadError(
            f"model {what} {model} does not exist (and it is not a hub id like owner/name): "
            f"check the path given as {setting('model')}"
        )
    try:
        return _load_pretrained(model, dtype, local_only=hub_unavailable(), quantize=quantize)
    except ModelLoadError:
        raise
    except (OSError, ValueError):
        raise ModelLoadError(hub_hint(model)) from None


def _configs_local(config: str | None) -> bool:
    """A single-file load reads its configs from ``config`` (a folder: local) or the hub."""
    return (config is not None and Path(config).expanduser().is_dir()) or hub_unavailable()


def _single_file_vae(path: Path, model_config: str | None, base: torch.nn.Module | None) -> torch.nn.Module:
    """A one-file VAE takes its architecture from the model config, else from the loaded model's VAE."""
    from adcli.engine.single_file import load_single_file_vae

    if model_config is not None or base is None:
        return load_single_file_vae(path, config=model_config, dtype=torch.float32, local_files_only=_configs_local(model_config))
    with tempfile.TemporaryDirectory(prefix="adcli-vae-config-") as folder:
        base.save_config(folder)
        return load_single_file_vae(path, config=folder, dtype=torch.float32, local_files_only=True)


def load_vae(vae: str, model_config: str | None = None, base: torch.nn.Module | None = None) -> torch.nn.Module:
    """A separate VAE: a diffusers folder (e.g. from ``adcli finetune-vae``), a hub id or a .safetensors file."""
    path = Path(vae).expanduser()
    try:
        if path.is_dir():
            sub = "vae" if (path / "vae" / "config.json").is_file() else None
            if sub is None and not (path / "config.json").is_file():
                raise ModelLoadError(f"VAE folder {path} has no config.json: pass a diffusers VAE folder")
            return AutoencoderKL.from_pretrained(str(path), subfolder=sub, local_files_only=True)
        if path.is_file():
            return _single_file_vae(path, model_config, base)
        if not is_hub_id(vae):
            what = "folder" if vae.endswith(("/", os.sep)) else "file or folder"
            raise ModelLoadError(f"VAE {what} {vae} does not exist: check the path given as {setting('vae')}")
        with quiet_loading():
            return AutoencoderKL.from_pretrained(vae, local_files_only=hub_unavailable())
    except ModelLoadError:
        raise
    except (OSError, ValueError) as error:
        if path.exists():
            raise ModelLoadError(f"VAE {path} could not be read ({_first_line(error)})") from None
        raise ModelLoadError(hub_hint(vae, "vae")) from None


def load_model_vae(model: str, vae: str | None = None, model_config: str | None = None) -> torch.nn.Module:
    """Only the VAE, in fp32: ``vae`` when given, else ``model``'s (for ``adcli finetune-vae``)."""
    if vae:
        return load_vae(vae, model_config).float()
    path = Path(model).expanduser()
    if path.is_dir() and (path / "vae" / "config.json").is_file():
        return load_vae(str(path), model_config).float()
    if archs.tiny_model_arch(model) is not None or path.exists() or not is_hub_id(model):
        return _load_components(model, model_config, torch.float32)[1]["vae"].float()
    try:
        with quiet_loading():
            return AutoencoderKL.from_pretrained(model, subfolder="vae", local_files_only=hub_unavailable()).float()
    except (OSError, ValueError):
        raise ModelLoadError(hub_hint(model)) from None


def load_backend(
    model: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    vae: str | None = None,
    model_config: str | None = None,
    controlnet: str | None = None,
    arch: str | None = None,
    loras: Sequence[tuple[str, float]] = (),
    quantize: str | None = None,
    low_vram: bool = False,
    pixels: int | None = None,
    free_gb: float | None = None,
) -> Backend:
    """Load a model for AD: weights frozen, in eval mode, denoiser and text encoders in ``dtype``.

    The VAE stays in fp32. ``arch`` (a registry name), when given, must be the loaded model's
    architecture; ``controlnet`` is loaded alongside (see :mod:`adcli.engine.controlnet`).
    ``loras`` — ``(path_or_hub_id, scale)`` pairs — are fused into the weights in order (see
    :mod:`adcli.engine.loras`); the backend's ``loras`` records their names, scales and SHA-256.
    ``quantize`` (int8/fp8/nf4; FLUX.1 and SD3.5) quantizes the transformer as it loads.

    Where it goes: a FLUX/SD3 model on a GPU is placed by the memory plan for the free GPU memory
    (``free_gb`` overrides it) and images of ``pixels`` pixels (:mod:`adcli.engine.memory`), which
    ``low_vram`` asks for and a model too large for the GPU gets anyway; ``backend.memory_note`` says
    what was chosen. Otherwise ``low_vram`` gives its fixed savings (:mod:`adcli.engine.lowvram`).
    """
    from adcli.engine.archs.quantize import check_quantization
    from adcli.engine.lowvram import enable_low_vram
    from adcli.engine.memory import apply_plan, plan_for

    quantize = None if quantize == "none" else quantize
    check_quantization(quantize, device)  # before anything loads
    loaded, components = _load_components(model, model_config, dtype, quantize)
    if arch not in (None, "auto") and arch != loaded.name:
        raise ModelLoadError(
            f"{setting('arch')} {arch} was asked for, but model {model} is {loaded.name}: "
            f"pass a matching {setting('model')}, or drop {setting('arch')}"
        )
    vae_model = load_vae(vae, model_config, base=components["vae"]) if vae else None
    if vae_model is not None and vae_model.config.latent_channels != loaded.latent_channels:
        raise ModelLoadError(
            f"VAE {vae} has {vae_model.config.latent_channels} latent channels, but {loaded.title} needs "
            f"{loaded.latent_channels}: pass a VAE made for {loaded.title} as {setting('vae')}"
        )
    backend = backend_from_components(loaded, components, device=device, dtype=dtype, source=model, vae=vae_model,
                                      place=False)
    quantized = quantize is not None or model.lower().endswith(".gguf")
    placement = plan_for(backend, quantized=quantized, low_vram=low_vram, pixels=pixels, free_gb=free_gb)
    if placement is not None:
        apply_plan(backend, placement.plan)
        backend.memory_note = placement.note
    else:
        place_backend(backend)
        if low_vram:
            enable_low_vram(backend)
    if loras:
        backend.loras = loaded.apply_loras(backend, loras)
    if controlnet:
        local_only = controlnet != "tiny" and not Path(controlnet).expanduser().is_dir() and hub_unavailable()
        with quiet_loading():
            backend.controlnet = loaded.load_controlnet(backend, controlnet, local_only)
    return backend
