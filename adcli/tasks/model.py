"""A loaded model as the task functions use it: the engine's backend, what it was loaded from
(recorded in every image's metadata), and its image cache."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from adcli.engine.compile import compile_denoiser
from adcli.engine.device import resolve_device, resolve_dtype
from adcli.engine.lowvram import enable_low_vram
from adcli.engine.backend import Backend
from adcli.engine.models import load_backend
from adcli.presets import parse_lora_spec
from adcli.presets.table import LOADING_KEYS
from adcli.tasks.common import ImageCache


@dataclass(repr=False)
class Model:
    """``backend``: the engine's view of the model; ``loaded``: what it was loaded from;
    ``session``: a context manager entered around every run (a borrowed pipeline uses it to be
    given back exactly as it was)."""

    backend: Backend
    loaded: dict[str, Any]
    cache: ImageCache = field(default_factory=ImageCache)
    session: Callable[[], AbstractContextManager] = nullcontext

    @property
    def arch(self) -> str:
        """The architecture's name (``sd15``, …), as metadata records it."""
        return self.backend.arch.name

    def __repr__(self) -> str:
        """One line, as a notebook shows it: what was loaded, its architecture, where and how it runs."""
        dtype = str(getattr(self.backend, "dtype", "?")).removeprefix("torch.")
        loras = [f"{lora['name']}:{lora['scale']:g}" for lora in self.loaded.get("lora_files") or ()]
        extra = f", loras={loras!r}" if loras else ""
        return (f"Model({self.loaded.get('model', self.backend.source)!r}, arch={self.arch!r}, "
                f"device={str(self.backend.device)!r}, dtype={dtype!r}{extra})")

    def record(self, metadata: dict[str, Any], image: Any) -> dict[str, Any]:
        """A job's metadata completed with what only the run knows: the model's architecture, the
        size the image was made at, and the LoRAs fused into the model (name, scale, SHA-256)."""
        extra = {"model_arch": self.arch, "size_used": f"{image.width}x{image.height}"}
        if self.loaded.get("lora_files"):
            extra["loras"] = self.loaded["lora_files"]
        return {**metadata, **extra}


def open_model(loading: dict[str, Any], device_name: str | None = None) -> Model:
    """Load a model from its loading settings (``model``, ``vae``, ``dtype``, … as in the presets)."""
    device = resolve_device(device_name or loading.get("device") or "auto")
    dtype = resolve_dtype(loading.get("dtype") or "bf16", device)
    backend = load_backend(
        loading["model"], device=device, dtype=dtype, vae=loading.get("vae"), model_config=loading.get("model_config"),
        arch=loading.get("arch"), controlnet=loading.get("controlnet"),
        loras=[parse_lora_spec(text) for text in loading.get("loras") or ()],
    )
    # The model is ours alone, so these stay on for its lifetime (no restore needed).
    if loading.get("low_vram"):
        enable_low_vram(backend)
    if loading.get("compile"):
        compile_denoiser(backend.denoiser)
    recorded = {key: loading[key] for key in LOADING_KEYS if loading.get(key) is not None}
    return Model(backend, {**recorded, "arch": backend.arch.name, "lora_files": [info.as_dict() for info in backend.loras]})


def loading_settings(settings: Any) -> dict[str, Any]:
    """The loading keys a task's settings object has."""
    return {key: getattr(settings, key) for key in LOADING_KEYS if hasattr(settings, key)}
