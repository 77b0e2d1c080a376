"""ControlNet: loading one for a model, and the control image it is conditioned on.

The sampler's denoiser adds the ControlNet's residuals to the UNet's; AD feature passes do not
use it (they take the empty prompt and no extra conditioning, as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from diffusers import ControlNetModel, UNet2DConditionModel

from adcli.engine.images import ImageSource, open_rgb
from adcli.engine.tiny import build_tiny_controlnet
from adcli.errors import ModelLoadError

TINY = "tiny"


@dataclass
class Control:
    """A loaded ControlNet, its conditioning image (1, 3, H, W) in [0, 1] and its weight."""

    model: ControlNetModel
    image: torch.Tensor
    scale: float = 1.0


def load_controlnet(
    source: str, unet: UNet2DConditionModel, *, device: torch.device, dtype: torch.dtype,
    tiny_model: bool, local_only: bool,
) -> ControlNetModel:
    """``tiny`` (random, shaped like a tiny ``unet``), a diffusers folder, a hub id or a .safetensors file."""
    if source == TINY:
        if not tiny_model:
            raise ModelLoadError("--controlnet tiny is a random test model for --model tiny or tiny-sdxl only")
        controlnet = build_tiny_controlnet(unet)
    else:
        controlnet = _load_pretrained(source, dtype, local_only)
    wanted, got = unet.config.cross_attention_dim, controlnet.config.cross_attention_dim
    if wanted != got:
        raise ModelLoadError(
            f"ControlNet {source} was made for another model architecture (text width {got}, the model's "
            f"is {wanted}): use a ControlNet for SD1.5 with an SD1.5 model, for SDXL with SDXL"
        )
    controlnet.eval().requires_grad_(False)
    # cast only when needed: a no-op cast makes diffusers warn
    return controlnet.to(device) if next(controlnet.parameters()).dtype == dtype else controlnet.to(device, dtype)


def _load_pretrained(source: str, dtype: torch.dtype, local_only: bool) -> ControlNetModel:
    path = Path(source).expanduser()
    try:
        if path.is_file():
            return ControlNetModel.from_single_file(str(path), torch_dtype=dtype, local_files_only=local_only)
        if path.is_dir():
            return ControlNetModel.from_pretrained(str(path), torch_dtype=dtype, local_files_only=True)
        if source.endswith(".safetensors") or source.startswith((".", "/", "~")) or source.count("/") != 1:
            raise ModelLoadError(f"ControlNet {source} does not exist: check the path given to --controlnet")
        return ControlNetModel.from_pretrained(source, torch_dtype=dtype, local_files_only=local_only)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if path.exists():
            raise ModelLoadError(f"ControlNet {path} could not be read ({reason})") from None
        raise ModelLoadError(
            f"ControlNet {source!r} could not be loaded from the Hugging Face hub or its cache: download it "
            f"once with `hf download {source}`, or pass --controlnet /path/to/a/local/folder"
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
