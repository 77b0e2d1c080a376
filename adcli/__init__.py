"""adcli: Attention Distillation (CVPR 2025) for Stable Diffusion 1.5, SDXL, FLUX.1 and SD3.5, as a library and a
command-line tool. ``import adcli`` is cheap: the model libraries load on first use of the API."""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

_API = ("Model", "appearance", "expand", "finetune_vae", "from_pipe", "load_model", "save", "style_transfer", "t2i", "texture")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from adcli import api

        return getattr(api, name)
    raise AttributeError(f"module 'adcli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
