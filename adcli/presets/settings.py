"""One frozen dataclass per task. Field types are checked when a preset is loaded; the defaults
live in the YAML files under ``configs/``, not here, so there is one source of truth."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from adcli.errors import PresetError

Dtype = Literal["bf16", "fp16", "fp32"]
Tile = Literal["none", "x", "y", "xy"]
MAX_SIDE = 4096
AUTO_SIZE = "auto"  # the model's native size (UNet sample size × 8): 512² SD1.5, 1024² SDXL


@dataclass(frozen=True)
class TaskSettings:
    """Settings every command shares."""

    allows_auto_size = False  # a class attribute (no annotation), not a setting: may size be "auto"?
    max_side = MAX_SIDE  # class attribute: the largest width or height this task accepts

    model: str
    model_config: str | None
    vae: str | None
    dtype: Dtype
    device: str
    seed: int
    size: str
    layers: tuple[int, ...]
    lr: float
    # Speed/memory options (keyword-only so that subclasses can add plain fields after them).
    compile: bool = field(kw_only=True)
    low_vram: bool = field(kw_only=True)

    def validate(self) -> None:
        if not (self.size == AUTO_SIZE and self.allows_auto_size):
            parse_size(self.size, self.max_side)
        if self.lr <= 0:
            raise PresetError(f"lr must be positive, got {self.lr}")
        if not self.layers:
            raise PresetError("layers must name at least one self-attention layer")


@dataclass(frozen=True)
class OptimizationSettings(TaskSettings):
    """Algorithm 1: optimize the latent directly for a number of iterations."""

    iterations: int
    content_weight: float

    def validate(self) -> None:
        super().validate()
        if self.iterations < 1:
            raise PresetError(f"iterations must be at least 1, got {self.iterations}")
        if self.content_weight < 0:
            raise PresetError(f"content_weight must not be negative, got {self.content_weight}")


@dataclass(frozen=True)
class StyleTransferSettings(OptimizationSettings):
    """Style transfer: content latent as init, AD loss on the style, content loss on the content."""


@dataclass(frozen=True)
class AppearanceSettings(OptimizationSettings):
    """Appearance transfer: like style transfer, with the paper's own content weight."""


@dataclass(frozen=True)
class TextureSettings(OptimizationSettings):
    """Texture synthesis from noise, by optimization (Alg. 1) or AD-guided sampling (Alg. 2);
    with label maps, masked synthesis from a label-filled init image."""

    mask_content_weight: float
    tile: Tile
    mode: Literal["optimize", "sample"]
    steps: int
    ad_iterations: int
    adain: bool

    def validate(self) -> None:
        super().validate()
        _check_sampling(self.steps, self.ad_iterations)
        if self.mask_content_weight < 0:
            raise PresetError(f"mask_content_weight must not be negative, got {self.mask_content_weight}")


@dataclass(frozen=True)
class FinetuneVaeSettings:
    """VAE decoder fine-tuning on reference images (paper Sec. 3.5, Eq. 10): no UNet, no layers."""

    model: str
    model_config: str | None
    vae: str | None
    device: str
    seed: int
    steps: int
    lr: float
    crop_size: int
    batch_size: int

    def validate(self) -> None:
        if self.steps < 1:
            raise PresetError(f"steps must be at least 1, got {self.steps}")
        if self.lr <= 0:
            raise PresetError(f"lr must be positive, got {self.lr}")
        if self.crop_size < 8 or self.crop_size % 8:
            raise PresetError(f"crop_size must be a positive multiple of 8, got {self.crop_size}")
        if self.batch_size < 1:
            raise PresetError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class T2ISettings(TaskSettings):
    """Style-specific text-to-image: AD-guided DDIM sampling (Alg. 2), optional layout and ControlNet."""

    allows_auto_size = True

    arch: Literal["auto", "sd15", "sdxl"]
    negative_prompt: str
    steps: int
    guidance: float
    ad_iterations: int
    adain: bool
    content_weight: float
    strength: float
    controlnet: str | None
    control_scale: float
    tile: Tile

    def validate(self) -> None:
        super().validate()
        _check_sampling(self.steps, self.ad_iterations)
        if self.guidance < 1:
            raise PresetError(f"guidance must be at least 1 (1 turns classifier-free guidance off), got {self.guidance}")
        if self.content_weight < 0:
            raise PresetError(f"content_weight must not be negative, got {self.content_weight}")
        if not 0 < self.strength <= 1:
            raise PresetError(f"strength must be in (0, 1] (1 ignores the layout's content), got {self.strength}")
        if self.control_scale < 0:
            raise PresetError(f"control_scale must not be negative, got {self.control_scale}")


@dataclass(frozen=True)
class ExpandSettings(TaskSettings):
    """Texture expansion: AD-guided sampling inside MultiDiffusion windows, any output size."""

    max_side = 16384

    steps: int
    ad_iterations: int
    adain: bool
    window: int
    stride: int
    window_batch: int
    tile: Tile

    def validate(self) -> None:
        super().validate()
        _check_sampling(self.steps, self.ad_iterations)
        if self.window < 8:
            raise PresetError(f"window must be at least 8 latents (64 px), got {self.window}")
        if not 1 <= self.stride <= self.window:
            raise PresetError(f"stride must be between 1 and the window ({self.window}), got {self.stride}")
        if self.window_batch < 1:
            raise PresetError(f"window_batch must be at least 1, got {self.window_batch}")


def _check_sampling(steps: int, ad_iterations: int) -> None:
    if not 1 <= steps <= 1000:
        raise PresetError(f"steps must be between 1 and 1000, got {steps}")
    if ad_iterations < 0:
        raise PresetError(f"ad_iterations must be 0 (plain sampling) or more, got {ad_iterations}")


def parse_size(text: str, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``"WIDTHxHEIGHT"`` → (width, height), multiples of 8 within ``max_side``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not match:
        raise PresetError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 512x512")
    width, height = int(match.group(1)), int(match.group(2))
    for name, value in (("width", width), ("height", height)):
        if value > max_side:
            raise PresetError(f"size {text}: {name} {value} is larger than {max_side} pixels")
        if value < 8 or value % 8:
            raise PresetError(f"size {text}: {name} {value} must be a positive multiple of 8 (e.g. 512x512)")
    return width, height
