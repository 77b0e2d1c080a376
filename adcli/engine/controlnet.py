"""ControlNet: the pieces every architecture's ControlNet shares, and the control image.

Each architecture loads its own ControlNet class (``Architecture.load_controlnet``) and adds its
residuals in its denoiser call (``Architecture.predict``); AD feature passes do not use it (they
take the empty prompt and no extra conditioning, as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adcli.engine.images import ImageSource, open_rgb
from adcli.errors import ModelLoadError, setting

TINY = "tiny"


@dataclass
class Control:
    """A loaded ControlNet, its conditioning image (1, 3, H, W) in [0, 1] and its weight."""

    model: torch.nn.Module
    image: torch.Tensor
    scale: float = 1.0


def place_controlnet(controlnet: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Frozen, in eval mode, on ``device`` in ``dtype`` (cast only when needed: a no-op cast makes diffusers warn)."""
    controlnet.eval().requires_grad_(False)
    return controlnet.to(device) if next(controlnet.parameters()).dtype == dtype else controlnet.to(device, dtype)


def load_pretrained_controlnet(model_class, source: str, dtype: torch.dtype, local_only: bool) -> torch.nn.Module:
    """A ``model_class`` ControlNet from a diffusers folder, a hub id or a .safetensors file; one line on failure."""
    path = Path(source).expanduser()
    try:
        if path.is_file():
            return model_class.from_single_file(str(path), torch_dtype=dtype, local_files_only=local_only)
        if path.is_dir():
            return model_class.from_pretrained(str(path), torch_dtype=dtype, local_files_only=True)
        if source.endswith(".safetensors") or source.startswith((".", "/", "~")) or source.count("/") != 1:
            raise ModelLoadError(f"ControlNet {source} does not exist: check the path given as {setting('controlnet')}")
        return model_class.from_pretrained(source, torch_dtype=dtype, local_files_only=local_only)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if path.exists():
            raise ModelLoadError(f"ControlNet {path} could not be read ({reason})") from None
        raise ModelLoadError(
            f"ControlNet {source!r} could not be loaded from the Hugging Face hub or its cache: download it "
            f"once with `hf download {source}`, or pass {setting('controlnet')} /path/to/a/local/folder"
        ) from None


def load_control_image(source: ImageSource, size: tuple[int, int]) -> torch.Tensor:
    """The control image as (1, 3, H, W) in [0, 1], resized to the output's ``size`` = (width, height).

    As diffusers' ControlNet pipelines do: the map is stretched to the output, so a depth map or
    edge image of the same aspect ratio lines up exactly, at any resolution.
    """
    image = open_rgb(source)
    if image.size != tuple(size):
        image = image.resize(tuple(size), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()
