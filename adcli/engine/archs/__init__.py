"""The registry of architectures: every model family adcli runs, one instance each, in the order
detection walks them. Adding a family is a module with an
:class:`~adcli.engine.archs.base.Architecture` subclass and one line in ``ARCHITECTURES``.

Everything that lists or picks families derives from here: the ``arch`` setting's choices, the
default model per family, the tiny model names, the probe, loading and ``from_pipe``. Importing
this package loads neither torch nor diffusers (``--help`` and ``info`` start without them).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from adcli.engine.archs.base import Architecture
from adcli.engine.archs.flux import Flux
from adcli.engine.archs.sd3 import SD3
from adcli.engine.archs.sd15 import SD15
from adcli.engine.archs.sdxl import SDXL
from adcli.errors import ModelLoadError, setting

# Listing order (``arch`` choices, messages). Detection asks each in turn and takes the first
# that claims a model; the families' rules are written to be disjoint, so the order does not decide.
ARCHITECTURES: tuple[Architecture, ...] = (SD15(), SDXL(), Flux(), SD3())


def names() -> tuple[str, ...]:
    """The families' names, as the ``arch`` setting takes them, in registry order."""
    return tuple(arch.name for arch in ARCHITECTURES)


def get(name: str) -> Architecture:
    """The family called ``name``; an unknown name is a :class:`ModelLoadError` listing the known ones."""
    found = next((arch for arch in ARCHITECTURES if arch.name == name), None)
    if found is None:
        raise ModelLoadError(f"unknown architecture {name!r}: expected one of {', '.join(names())}")
    return found


def titles() -> str:
    """'Stable Diffusion 1.5, SDXL, FLUX.1 or Stable Diffusion 3.5': the supported families, for messages."""
    found = [arch.title for arch in ARCHITECTURES]
    return found[0] if len(found) == 1 else ", ".join(found[:-1]) + " or " + found[-1]


def tiny_models() -> dict[str, str]:
    """Tiny model name → its family's name (``tiny`` → ``sd15``)."""
    return {tiny: arch.name for arch in ARCHITECTURES for tiny in arch.tiny_models}


def default_models() -> dict[str, str]:
    """Family name → the hub id its ``arch`` setting picks when no model is given."""
    return {arch.name: arch.default_model for arch in ARCHITECTURES}


def preset_keys() -> tuple[str, ...]:
    """Every ``by_arch`` key a preset may use: each family's name and each of its variants' (``flux-schnell``)."""
    return tuple(key for arch in ARCHITECTURES for key in (arch.name, *(arch.preset_key(v) for v in arch.variants)))


def tiny_model_arch(model: str) -> Architecture | None:
    """The family of a tiny model name, or None when ``model`` is not one."""
    name = tiny_models().get(model)
    return None if name is None else get(name)


def _first(claims: str, *args: Any) -> Architecture | None:
    return next((arch for arch in ARCHITECTURES if getattr(arch, claims)(*args)), None)


def detect_index(model_index: dict, source: str = "the model") -> Architecture:
    """The family of a diffusers ``model_index.json``; none is a one-line ModelLoadError."""
    found = _first("claims_index", model_index)
    if found is None:
        kind = model_index.get("_class_name", "an unknown pipeline")
        raise ModelLoadError(f"{source} is a {kind}, which adcli cannot run: it runs {titles()} models")
    return found


def detect_denoiser_config(config: dict) -> Architecture | None:
    """The family of a denoiser ``config.json`` alone (no model index at hand), or None."""
    return _first("claims_denoiser_config", config)


def detect_checkpoint(keys: Collection[str]) -> Architecture | None:
    """The family of a single-file checkpoint with these tensor names, or None."""
    return _first("claims_checkpoint", keys)


def detect_pipe(pipe: Any) -> Architecture:
    """The family of a user's diffusers pipeline; none is a one-line ModelLoadError."""
    found = _first("claims_pipe", pipe)
    if found is None:
        raise ModelLoadError(
            f"{type(pipe).__name__} is not a pipeline adcli can run: pass a {titles()} pipeline "
            f"({' or '.join(arch.pipeline_class for arch in ARCHITECTURES)})"
        )
    return found


def check_quantizable(arch: Architecture, kind: str | None) -> None:
    """``quantize`` on a family whose weights adcli does not quantize is a one-line error naming the ones it does."""
    if kind in (None, "none") or arch.quantizable:
        return
    which = " and ".join(family.title for family in ARCHITECTURES if family.quantizable)
    raise ModelLoadError(
        f"{setting('quantize')} {kind} is for {which} transformers; {arch.title} runs unquantized (it fits small "
        f"GPUs with {setting('low_vram')}): drop {setting('quantize')}"
    )
