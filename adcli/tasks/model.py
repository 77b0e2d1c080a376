"""A loaded model as the task functions use it: the engine's backend, what it was loaded from
(recorded in every image's metadata), and its image cache."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from adcli.engine.compile import compile_denoiser
from adcli.engine.device import resolve_device, resolve_dtype
from adcli.engine.backend import Backend
from adcli.engine.models import load_backend
from adcli.outputs.metadata import PEAK_KEY
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
    notes: list[str] = field(default_factory=list)  # remarks on the load (the memory plan's line), said once
    peak_gpu_gb: float | None = None  # the peak GPU memory of the last images made (None on a CPU)

    @property
    def arch(self) -> str:
        """The architecture's name (``sd15``, …), as metadata records it."""
        return self.backend.arch.name

    @property
    def preset_arch(self) -> str:
        """The ``by_arch`` key whose preset values apply: the family's name, or its variant's (``flux-schnell``)."""
        return self.backend.preset_key

    def __repr__(self) -> str:
        """One line, as a notebook shows it: what was loaded, its architecture, where and how it runs."""
        dtype = str(getattr(self.backend, "dtype", "?")).removeprefix("torch.")
        loras = [f"{lora['name']}:{lora['scale']:g}" for lora in self.loaded.get("lora_files") or ()]
        extra = f", loras={loras!r}" if loras else ""
        return (f"Model({self.loaded.get('model', self.backend.source)!r}, arch={self.arch!r}, "
                f"device={str(self.backend.device)!r}, dtype={dtype!r}{extra})")

    def record(self, metadata: dict[str, Any], image: Any) -> dict[str, Any]:
        """A job's metadata completed with what only the run knows: the model's architecture, the
        size the image was made at, the LoRAs fused into the model (name, scale, SHA-256) and, on a
        GPU, the peak GPU memory (GB) while it was made (absent on a CPU)."""
        extra = {"model_arch": self.arch, "size_used": f"{image.width}x{image.height}"}
        if self.loaded.get("lora_files"):
            extra["loras"] = self.loaded["lora_files"]
        if self.peak_gpu_gb is not None:
            extra[PEAK_KEY] = round(self.peak_gpu_gb, 2)
        return {**metadata, **extra}


def open_model(loading: dict[str, Any], device_name: str | None = None, pixels: int | None = None) -> Model:
    """Load a model from its loading settings (``model``, ``vae``, ``dtype``, … as in the presets).
    ``pixels``: the largest image the model will make, when known, for a small GPU's memory plan
    (default: the model's native size). What the plan chose is the model's first note."""
    device = resolve_device(device_name or loading.get("device") or "auto")
    dtype = resolve_dtype(loading.get("dtype") or "bf16", device)
    # The model is ours alone, so its memory savings stay on for its lifetime (no restore needed).
    backend = load_backend(
        loading["model"], device=device, dtype=dtype, vae=loading.get("vae"), model_config=loading.get("model_config"),
        arch=loading.get("arch"), controlnet=loading.get("controlnet"),
        loras=[parse_lora_spec(text) for text in loading.get("loras") or ()],
        quantize=loading.get("quantize"), low_vram=bool(loading.get("low_vram")), pixels=pixels,
    )
    if loading.get("compile"):
        compile_denoiser(backend.denoiser)
    recorded = {key: loading[key] for key in LOADING_KEYS if loading.get(key) is not None}
    notes = [backend.memory_note] if backend.memory_note else []
    return Model(backend, {**recorded, "arch": backend.arch.name, "lora_files": [info.as_dict() for info in backend.loras]},
                 notes=notes)


def planned_pixels(settings: Any) -> int | None:
    """The pixels one AD pass of a job with these settings covers, for the memory plan: the image's
    (an exact size, or the longer side squared: at most that), an expansion's batch of windows (8 px a
    latent); None for ``auto`` (the model's native size, known once it loads)."""
    if hasattr(settings, "window"):
        return getattr(settings, "window_batch", 1) * (settings.window * 8) ** 2
    spec = settings.size_spec() if hasattr(settings, "size_spec") else None
    if spec is None or spec.kind == "auto":
        return None
    return spec.width * spec.height


def loading_settings(settings: Any) -> dict[str, Any]:
    """The loading keys a task's settings object has."""
    return {key: getattr(settings, key) for key in LOADING_KEYS if hasattr(settings, key)}
