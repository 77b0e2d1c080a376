"""Loading FLUX.1 and SD3/SD3.5 models: a dict of pipeline components, whatever the source.

Sources (``model``):
- a local diffusers folder or a hub id (``local_files_only`` when the hub cannot be reached or
  ``HF_HUB_OFFLINE`` is set, as for SD models);
- one transformer file — ``.safetensors`` in the original layout (BFL's FLUX, Stability's SD3) or
  with diffusers' keys, or a ``.gguf`` file — plus ``model_config``, a diffusers folder or hub id
  that provides everything else (text encoders, tokenizers, VAE, scheduler) and the transformer's
  config, as diffusers' ``from_single_file(..., config=...)`` takes it.

``quantize`` (int8/fp8/nf4) quantizes the transformer while it loads; a GGUF file is quantized
already. ``vae`` replaces the model's VAE (it must have 16 latent channels). The result has the
keys of FluxPipeline's / StableDiffusion3Pipeline's components, ready to be passed to either.
"""

from __future__ import annotations

from pathlib import Path

import torch

from adcli.engine.archs.flux_original import flux_original_to_diffusers
from adcli.engine.archs.quantize import gguf_config, quantization_config
from adcli.engine.archs.transformer_detect import (
    KEY_PREFIXES,
    TransformerProbe,
    check_arch,
    check_config_matches,
    check_not_quantizing_gguf,
    probe_transformer,
    probe_transformer_file,
)
from adcli.engine.hub import hub_hint, hub_unavailable, is_hub_id
from adcli.engine.quiet import quiet_loading
from adcli.errors import ModelLoadError, setting

TRANSFORMER_FILE_SUFFIXES = (".safetensors", ".gguf")
LATENT_CHANNELS = 16


def _classes(arch: str) -> tuple[type, type]:
    """(pipeline class, transformer class) of ``arch``."""
    from diffusers import FluxPipeline, FluxTransformer2DModel, SD3Transformer2DModel, StableDiffusion3Pipeline

    return {"flux": (FluxPipeline, FluxTransformer2DModel), "sd3": (StableDiffusion3Pipeline, SD3Transformer2DModel)}[arch]


def _detail(error: BaseException) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


def _hub_error(name: str, option: str) -> ModelLoadError:
    return ModelLoadError(hub_hint(name, option))


def _check_loaded(name: str, part: str, module) -> None:
    """diffusers leaves weights missing from a file on the meta device instead of failing."""
    if isinstance(module, torch.nn.Module) and any(p.is_meta for p in module.parameters()):
        raise ModelLoadError(f"{name} has no (or incomplete) weights for the {part}; it cannot be used")


def _subfolder(config: str, part: str) -> str | None:
    """``part`` of a pipeline folder or hub id; None for a folder that is that part itself."""
    folder = Path(config).expanduser()
    if folder.is_dir() and not (folder / part / "config.json").is_file() and (folder / "config.json").is_file():
        return None
    return part


def _arch_of_pretrained(source: str, local_only: bool) -> str:
    from diffusers import DiffusionPipeline

    from adcli.engine.archs.transformer_detect import PIPELINE_CLASSES

    index = DiffusionPipeline.load_config(source, local_files_only=local_only)
    arch = PIPELINE_CLASSES.get(index.get("_class_name", ""))
    if arch is None:
        raise ModelLoadError(f"model {source} is a {index.get('_class_name')}, not a FLUX or SD3 pipeline")
    return arch


def load_pretrained_components(
    source: str, *, arch: str, dtype: torch.dtype, local_only: bool, quantization=None, **given
) -> dict:
    """Every component of a diffusers folder or hub id, the transformer quantized by ``quantization``
    (a diffusers config) unless ``given`` holds one; ``given`` components (``transformer=``, ``vae=``)
    are used as they are instead of being loaded."""
    pipeline_class, transformer_class = _classes(arch)
    with quiet_loading():
        if "transformer" not in given:
            given["transformer"] = transformer_class.from_pretrained(
                source, subfolder="transformer", torch_dtype=dtype, quantization_config=quantization,
                local_files_only=local_only,
            )
        pipe = pipeline_class.from_pretrained(source, torch_dtype=dtype, local_files_only=local_only, **given)
    components = dict(pipe.components)
    for name, module in components.items():
        _check_loaded(source, name, module)
    return components


def _read_checkpoint(path: Path) -> dict:
    from diffusers.loaders.single_file_utils import load_single_file_checkpoint

    try:
        with quiet_loading():
            return load_single_file_checkpoint(str(path), local_files_only=True)
    except Exception as error:  # safetensors and gguf raise their own kinds
        raise ModelLoadError(f"{path} could not be read ({_detail(error)})") from None


def _diffusers_keys(checkpoint: dict) -> dict:
    """A diffusers-layout file's keys without a ``transformer.``/``model.diffusion_model.`` prefix."""
    for prefix in KEY_PREFIXES:
        if all(key.startswith(prefix) for key in checkpoint):
            return {key[len(prefix):]: value for key, value in checkpoint.items()}
    return checkpoint


def load_transformer_file(
    path, probe: TransformerProbe, *, config: str, dtype: torch.dtype, quantization=None, local_only: bool
) -> torch.nn.Module:
    """The transformer of one ``.safetensors``/``.gguf`` file, its config from ``config`` (a diffusers
    folder or hub id). A GGUF file loads through diffusers' GGUF support, dequantized to ``dtype``
    as it runs; ``quantization`` applies to an unquantized file only (:func:`load_transformer_components`
    refuses one for a GGUF file before building it)."""
    path = Path(path)
    gguf = path.suffix.lower() == ".gguf"
    checkpoint = _read_checkpoint(path)
    if probe.arch == "flux" and probe.layout == "original":
        checkpoint = flux_original_to_diffusers(checkpoint, path.name)  # diffusers' converter is FLUX.1-wide only
    elif probe.layout == "diffusers":
        checkpoint = _diffusers_keys(checkpoint)
    _, transformer_class = _classes(probe.arch)
    with quiet_loading():
        try:
            transformer = transformer_class.from_single_file(
                checkpoint, config=config, subfolder=_subfolder(config, "transformer"), torch_dtype=dtype,
                quantization_config=gguf_config(dtype) if gguf else quantization, local_files_only=local_only,
            )
        except (ModelLoadError, torch.OutOfMemoryError):
            raise
        except Exception as error:  # diffusers raises many kinds; the user needs one line
            raise ModelLoadError(
                f"cannot load {path.name} with {setting('model_config')} {config} (does it match the file's "
                f"architecture and size?): {_detail(error)}"
            ) from None
    _check_loaded(path.name, "transformer", transformer)
    return transformer


def load_vae16(spec: str, *, dtype: torch.dtype, model_config: str | None = None, local_only: bool) -> torch.nn.Module:
    """A separate VAE for FLUX/SD3 — a diffusers folder (or its ``vae/``), a hub id, or a ``.safetensors``
    file whose config comes from ``model_config``'s ``vae/`` — checked to have 16 latent channels."""
    from diffusers import AutoencoderKL

    path = Path(spec).expanduser()
    with quiet_loading():
        try:
            if path.is_file():
                if model_config is None:
                    raise ModelLoadError(f"a VAE file ({path.name}) needs {setting('model_config')} for its configuration")
                vae = AutoencoderKL.from_single_file(
                    str(path), config=model_config, subfolder=_subfolder(model_config, "vae"), torch_dtype=dtype,
                    local_files_only=local_only or Path(model_config).expanduser().is_dir(),
                )
            elif path.is_dir():
                sub = "vae" if (path / "vae" / "config.json").is_file() else None
                vae = AutoencoderKL.from_pretrained(str(path), subfolder=sub, torch_dtype=dtype, local_files_only=True)
            elif is_hub_id(spec):
                vae = AutoencoderKL.from_pretrained(spec, torch_dtype=dtype, local_files_only=local_only)
            else:
                raise ModelLoadError(f"VAE {spec} does not exist: check the path given to {setting('vae')}")
        except ModelLoadError:
            raise
        except (OSError, ValueError) as error:
            if path.exists():
                raise ModelLoadError(f"VAE {path} could not be read ({_detail(error)})") from None
            raise _hub_error(spec, "vae") from None
    _check_loaded(spec, "VAE", vae)
    channels = vae.config.latent_channels
    if channels != LATENT_CHANNELS:
        raise ModelLoadError(
            f"VAE {spec} has {channels} latent channels; FLUX and SD3 need a 16-channel VAE (such as the model's own vae/)"
        )
    return vae


def _configs_local(config: str) -> bool:
    return Path(config).expanduser().is_dir() or hub_unavailable()


def load_transformer_components(
    model: str, *, dtype: torch.dtype, arch: str | None = None, model_config: str | None = None,
    quantize: str | None = None, vae: str | None = None, device: torch.device | str | None = None,
) -> tuple[str, dict]:
    """``(arch, components)`` of a FLUX/SD3 ``model`` (see the module's docstring), in ``dtype``, on the CPU.

    ``arch`` (``flux``/``sd3``), when given, must be the model's: another architecture is a one-line
    error naming both. ``quantize`` is checked against ``device`` (where the model will run) when given.
    """
    quantize = None if quantize == "none" else quantize
    check_not_quantizing_gguf(model, quantize)  # before asking for the quantization's packages
    quantization = quantization_config(quantize, device=None if device is None else torch.device(device), compute_dtype=dtype)
    given = {}
    path = Path(model).expanduser()
    if path.is_dir():
        probe = probe_transformer(str(path))
        if probe is None:
            raise ModelLoadError(f"model folder {path} is not a FLUX or SD3 diffusers model (its transformer/config.json "
                                 f"names no FluxTransformer2DModel or SD3Transformer2DModel)")
        check_arch(probe, arch, str(path))
        source, local_only, found = str(path), True, probe.arch
    elif path.is_file() or model.lower().endswith(TRANSFORMER_FILE_SUFFIXES):
        if not path.is_file():
            raise ModelLoadError(f"model file {path} does not exist: check the path given to {setting('model')}")
        probe = probe_transformer_file(path)
        if probe is None:
            raise ModelLoadError(f"{path.name} holds no FLUX or SD3 transformer (none of their tensor names)")
        check_arch(probe, arch, path.name)
        if model_config is None:
            raise ModelLoadError(
                f"{path.name} holds only {probe.a_label} transformer: pass {setting('model_config')} with a diffusers "
                f"folder or hub id of the same model for its text encoders, VAE and scheduler"
            )
        check_config_matches(probe, model_config, path.name)
        source, local_only, found = model_config, _configs_local(model_config), probe.arch
        given["transformer"] = load_transformer_file(
            path, probe, config=model_config, dtype=dtype, quantization=quantization, local_only=local_only
        )
    elif is_hub_id(model):
        source, local_only = model, hub_unavailable()
        probe = probe_transformer(model)
        try:
            found = probe.arch if probe is not None else _arch_of_pretrained(model, local_only)
        except (OSError, ValueError) as error:
            if isinstance(error, ModelLoadError):
                raise
            raise _hub_error(model, "model") from None
        if probe is not None:
            check_arch(probe, arch, model)
        elif arch not in (None, "auto") and arch != found:
            check_arch(TransformerProbe(found, 0), arch, model)
    else:
        raise ModelLoadError(f"model {model} does not exist (and it is not a hub id like owner/name): check {setting('model')}")
    if vae:
        given["vae"] = load_vae16(vae, dtype=dtype, model_config=model_config or source, local_only=local_only)
    try:
        components = load_pretrained_components(
            source, arch=found, dtype=dtype, local_only=local_only, quantization=quantization, **given
        )
    except ModelLoadError:
        raise
    except (OSError, ValueError) as error:
        if Path(source).expanduser().exists():
            raise ModelLoadError(f"model folder {source} could not be read ({_detail(error)})") from None
        raise _hub_error(source, "model" if source == model else "model_config") from None
    return found, components
