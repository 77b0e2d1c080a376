"""Loading a model from one original-layout `.safetensors` checkpoint (as Civitai-style files come).

diffusers converts the weights itself (the pipeline's ``from_single_file``); it still needs the
diffusers configs of the architecture (``config``: a local diffusers folder or a hub id; by
default its hub repos), which is what fails offline. Each architecture says which pipeline class
and parts (``Architecture.load_single_file``); every failure here becomes one ``ModelLoadError`` line.
"""

from __future__ import annotations

import os
import re

import torch

from adcli.engine.probe import detect_arch, read_safetensors_header
from adcli.engine.quiet import quiet_loading
from adcli.errors import ModelLoadError, setting

__all__ = ["detect_arch", "load_single_file_components", "load_single_file_vae", "quiet_loading"]

_CONFIG_HINT = (
    f"pass {setting('model_config')} with a local diffusers folder of the same architecture, "
    "or run once with network to fill the Hugging Face cache"
)
def _check_config(config: str | None) -> None:
    """A config that looks like a path but is no folder would reach diffusers as a bad hub id."""
    hub_id = config and re.fullmatch(r"[\w-][\w.-]*/[\w.-]+", config)
    if config and not hub_id and not os.path.isdir(config):
        raise ModelLoadError(f"model config folder not found: {config}")


def _load_error(path, config, err: Exception) -> ModelLoadError:
    """One line naming the file; missing configs (offline, empty cache) say how to provide them."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    detail = " ".join(str(err).split())[:300]
    network = (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, ConnectionError, TimeoutError)
    if isinstance(err, network) or (isinstance(err, OSError) and not (config and os.path.isdir(config))):
        where = f"config {config!r}" if config else "diffusers' default configs from the Hugging Face hub"
        return ModelLoadError(f"cannot load {path}: {where} not available ({detail}); {_CONFIG_HINT}")
    return ModelLoadError(f"cannot load {path} (does {setting('model_config')} match its architecture?): {detail}")


def _check_loaded(path, name: str, module) -> None:
    """diffusers leaves weights missing from the file on the meta device instead of failing."""
    if isinstance(module, torch.nn.Module) and any(p.is_meta for p in module.parameters()):
        raise ModelLoadError(f"{path} has no (or incomplete) weights for the {name}; it cannot be used alone")


def load_single_file_components(
    path, *, pipeline_class, names, extra: dict, config: str | None, dtype, local_files_only: bool
) -> dict:
    """The parts ``names`` (and the scheduler) of ``pipeline_class`` read from one checkpoint file;
    ``extra``: pipeline parts AD does not use, passed as None."""
    read_safetensors_header(path)  # a truncated or foreign file fails here, in one line
    _check_config(config)
    with quiet_loading():
        try:
            pipe = pipeline_class.from_single_file(
                str(path), config=config, torch_dtype=dtype, local_files_only=local_files_only, **extra
            )
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # diffusers raises many kinds; the user needs one line
            raise _load_error(path, config, err) from err
    components = {name: getattr(pipe, name) for name in names}
    for name, module in components.items():
        _check_loaded(path, name, module)
    components["scheduler"] = pipe.scheduler
    return components


def load_single_file_vae(path, *, config: str | None, dtype, local_files_only: bool):
    """A VAE from one `.safetensors` file, in original (``first_stage_model.``/bare LDM) or diffusers
    key layout. ``config``: a VAE folder, or a pipeline folder/hub id with a ``vae/`` subfolder; pass
    the base model's, since with None diffusers assumes the SD1.5 VAE config (SDXL's scaling factor differs)."""
    from diffusers import AutoencoderKL

    read_safetensors_header(path)
    _check_config(config)
    kwargs = {"torch_dtype": dtype, "local_files_only": local_files_only}
    if config is not None:
        kwargs["config"] = config
        if not (os.path.isdir(config) and os.path.isfile(os.path.join(config, "config.json"))):
            kwargs["subfolder"] = "vae"
    with quiet_loading():
        try:
            vae = AutoencoderKL.from_single_file(str(path), **kwargs)
        except torch.OutOfMemoryError:
            raise
        except Exception as err:
            raise _load_error(path, config, err) from err
    _check_loaded(path, "VAE", vae)
    return vae
