"""Generated from adcli/presets/table.py by `python -m adcli.presets.stubs`: do not edit."""

from dataclasses import dataclass
from typing import Literal, Optional

from adcli.presets.settings import TaskSettings, _ExpandRules, _FinetuneRules


@dataclass(frozen=True)
class StyleTransferSettings(TaskSettings):
    model: str
    model_config: Optional[str]
    vae: Optional[str]
    loras: tuple[str, ...]
    arch: Literal['auto', 'sd15', 'sdxl', 'flux', 'sd3']
    dtype: Literal['bf16', 'fp16', 'fp32']
    device: str
    compile: bool
    quantize: Literal['none', 'int8', 'fp8', 'nf4']
    low_vram: bool
    seed: int
    size: str
    layers: tuple[int, ...]
    lr: float
    preview_every: int
    iterations: int
    content_weight: float


@dataclass(frozen=True)
class AppearanceSettings(TaskSettings):
    model: str
    model_config: Optional[str]
    vae: Optional[str]
    loras: tuple[str, ...]
    arch: Literal['auto', 'sd15', 'sdxl', 'flux', 'sd3']
    dtype: Literal['bf16', 'fp16', 'fp32']
    device: str
    compile: bool
    quantize: Literal['none', 'int8', 'fp8', 'nf4']
    low_vram: bool
    seed: int
    size: str
    layers: tuple[int, ...]
    lr: float
    preview_every: int
    iterations: int
    content_weight: float


@dataclass(frozen=True)
class TextureSettings(TaskSettings):
    model: str
    model_config: Optional[str]
    vae: Optional[str]
    loras: tuple[str, ...]
    arch: Literal['auto', 'sd15', 'sdxl', 'flux', 'sd3']
    dtype: Literal['bf16', 'fp16', 'fp32']
    device: str
    compile: bool
    quantize: Literal['none', 'int8', 'fp8', 'nf4']
    low_vram: bool
    seed: int
    size: str
    layers: tuple[int, ...]
    lr: float
    preview_every: int
    iterations: int
    content_weight: float
    mask_content_weight: float
    tile: Literal['none', 'x', 'y', 'xy']
    mode: Literal['optimize', 'sample']
    steps: int
    ad_iterations: int
    adain: bool


@dataclass(frozen=True)
class T2ISettings(TaskSettings):
    model: str
    model_config: Optional[str]
    vae: Optional[str]
    loras: tuple[str, ...]
    arch: Literal['auto', 'sd15', 'sdxl', 'flux', 'sd3']
    dtype: Literal['bf16', 'fp16', 'fp32']
    device: str
    compile: bool
    quantize: Literal['none', 'int8', 'fp8', 'nf4']
    low_vram: bool
    seed: int
    size: str
    layers: tuple[int, ...]
    lr: float
    preview_every: int
    controlnet: Optional[str]
    negative_prompt: str
    steps: int
    ad_iterations: int
    adain: bool
    guidance: float
    content_weight: float
    strength: float
    control_scale: float
    tile: Literal['none', 'x', 'y', 'xy']


@dataclass(frozen=True)
class ExpandSettings(_ExpandRules):
    model: str
    model_config: Optional[str]
    vae: Optional[str]
    loras: tuple[str, ...]
    arch: Literal['auto', 'sd15', 'sdxl', 'flux', 'sd3']
    dtype: Literal['bf16', 'fp16', 'fp32']
    device: str
    compile: bool
    quantize: Literal['none', 'int8', 'fp8', 'nf4']
    low_vram: bool
    seed: int
    size: str
    layers: tuple[int, ...]
    lr: float
    preview_every: int
    steps: int
    ad_iterations: int
    adain: bool
    window: int
    stride: int
    window_batch: int
    tile: Literal['none', 'x', 'y', 'xy']


@dataclass(frozen=True)
class FinetuneVaeSettings(_FinetuneRules):
    model: str
    model_config: Optional[str]
    vae: Optional[str]
    arch: Literal['auto', 'sd15', 'sdxl', 'flux', 'sd3']
    device: str
    seed: int
    steps: int
    lr: float
    crop_size: int
    batch_size: int
