"""Jobs (one output image each), per-job seeds, how tasks report progress, and the plain way to run
a job list (the batch machinery behind it is tasks/batch.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from adcli.engine.compile import compile_unet
from adcli.engine.device import resolve_device, resolve_dtype
from adcli.engine.lowvram import enable_low_vram
from adcli.engine.models import Backend, load_backend
from adcli.presets import ResolvedSettings
from adcli.tasks.common import LatentCache


class Reporter(Protocol):
    """How tasks tell the CLI what happens; nothing below the CLI prints."""

    def loading(self, what: str) -> None: ...
    def job_started(self, index: int, total: int, name: str, steps: int) -> None: ...
    def step(self, step: int, total: int, loss: float | None, detail: str | None = None) -> None: ...
    def job_done(self, name: str, path: Path, seconds: float) -> None: ...
    def job_failed(self, name: str, message: str) -> None: ...
    def job_skipped(self, name: str, path: Path) -> None: ...
    def info(self, message: str) -> None: ...


def progress_callback(reporter: Reporter) -> Callable[[dict[str, Any]], None]:
    """The engine's progress reports (``adcli.engine.progress``) shown through ``reporter.step``."""

    def show(info: dict[str, Any]) -> None:
        parts = []
        if info.get("ad_iterations"):
            parts.append(f"step {info['step']}/{info['total']} · AD iteration {info['ad_iteration']}/{info['ad_iterations']}")
        if info.get("windows"):
            parts.append(f"windows {info['windows_done']}/{info['windows']}")
        reporter.step(info["step"], info["total"], info["loss"], " · ".join(parts) or None)

    return show


class SilentReporter:
    def loading(self, what: str) -> None: ...
    def job_started(self, index: int, total: int, name: str, steps: int) -> None: ...
    def step(self, step: int, total: int, loss: float | None, detail: str | None = None) -> None: ...
    def job_done(self, name: str, path: Path, seconds: float) -> None: ...
    def job_failed(self, name: str, message: str) -> None: ...
    def job_skipped(self, name: str, path: Path) -> None: ...
    def info(self, message: str) -> None: ...


def derive_seed(seed: int, key: str) -> int:
    """A per-job seed from the run's seed and the job's identity, so a job rerun alone matches."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass
class Job:
    """One output image: its name, the inputs recorded in metadata, and how to make it."""

    name: str
    inputs: dict[str, Any]
    make: Callable[[Backend, int], Image.Image]
    key: str = ""
    steps: int = 0
    # Batch machinery (tasks/batch.py): --name template fields (e.g. content, style); the job's own
    # settings when they differ from the run's (manifest rows); a fixed seed (rerun) instead of a
    # derived one; an output name from a manifest; the input files whose digests go into metadata.
    fields: dict[str, Any] = field(default_factory=dict)
    resolved: ResolvedSettings | None = None
    seed: int | None = None
    output_name: str | None = None
    files: list[Path] = field(default_factory=list)
    # Jobs with equal ``group`` can be made together, in one UNet batch, by ``make_group(backend,
    # jobs, seeds)``; it must give each job the picture ``make`` gives it alone.
    group: Hashable | None = None
    make_group: Callable[[Backend, list[Job], list[int]], list[Image.Image]] | None = None


@dataclass
class JobContext:
    """What the jobs of one run share: the reporter and the encoded-image cache."""

    reporter: Reporter
    latents: LatentCache = field(default_factory=LatentCache)
    _memo: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    def once(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for in this run, the stored value after
        (label maps, control images: read once however many jobs use them)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


def open_backend(resolved: ResolvedSettings, reporter: Reporter, device_name: str | None = None) -> Backend:
    settings = resolved.settings
    device = resolve_device(device_name or settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    reporter.loading(f"model {settings.model} on {device}")
    backend = load_backend(
        settings.model, device=device, dtype=dtype, vae=settings.vae, model_config=settings.model_config,
        # only some tasks have these settings (t2i): an architecture check and a ControlNet
        arch=getattr(settings, "arch", None), controlnet=getattr(settings, "controlnet", None),
    )
    # The run owns this backend, so the options stay on for its lifetime (no restore needed).
    if settings.low_vram:
        enable_low_vram(backend)
    if settings.compile:
        compile_unet(backend.unet)
    return backend
