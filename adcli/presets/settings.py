"""One frozen dataclass per task. Field types are checked when a preset is loaded; the defaults
live in the YAML files under ``configs/``, not here, so there is one source of truth."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from adcli.errors import PresetError

Dtype = Literal["bf16", "fp16", "fp32"]
MAX_SIDE = 4096


@dataclass(frozen=True)
class TaskSettings:
    """Settings every command shares."""

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
        parse_size(self.size)
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
    """Texture synthesis from noise."""


def parse_size(text: str, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``"WIDTHxHEIGHT"`` → (width, height), multiples of 8 within ``max_side``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not match:
        raise PresetError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 512x512")
    width, height = int(match.group(1)), int(match.group(2))
    for name, value in (("width", width), ("height", height)):
        if value < 8 or value % 8:
            raise PresetError(f"size {text}: {name} {value} must be a positive multiple of 8 (e.g. 512x512)")
        if value > max_side:
            raise PresetError(f"size {text}: {name} {value} is larger than {max_side} pixels")
    return width, height
