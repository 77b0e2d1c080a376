"""Running a list of jobs: one model, per-job seeds, progress reports, failures isolated."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

import adcli
from adcli.engine.compile import compile_unet
from adcli.engine.device import resolve_device, resolve_dtype
from adcli.engine.lowvram import enable_low_vram
from adcli.engine.models import Backend, load_backend
from adcli.errors import AdcliError, OutOfMemory, OutputError
from adcli.presets import ResolvedSettings
from adcli.tasks.outputs import free_path, write_png


class Reporter(Protocol):
    """How tasks tell the CLI what happens; nothing below the CLI prints."""

    def loading(self, what: str) -> None: ...
    def job_started(self, index: int, total: int, name: str, steps: int) -> None: ...
    def step(self, step: int, total: int, loss: float | None) -> None: ...
    def job_done(self, name: str, path: Path, seconds: float) -> None: ...
    def job_failed(self, name: str, message: str) -> None: ...


class SilentReporter:
    def loading(self, what: str) -> None: ...
    def job_started(self, index: int, total: int, name: str, steps: int) -> None: ...
    def step(self, step: int, total: int, loss: float | None) -> None: ...
    def job_done(self, name: str, path: Path, seconds: float) -> None: ...
    def job_failed(self, name: str, message: str) -> None: ...


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


@dataclass
class Outcome:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def open_backend(resolved: ResolvedSettings, reporter: Reporter) -> Backend:
    settings = resolved.settings
    device = resolve_device(settings.device)
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


def _destination(output: Path, job: Job, single: bool) -> tuple[Path, bool]:
    """(path, explicit): an explicit ``.png`` output for a single job, else a free name in a folder."""
    if output.suffix.lower() == ".png":
        if not single:
            raise OutputError(f"-o {output} names one file, but this run makes several images: give a folder")
        return output, True
    if output.exists() and not output.is_dir():
        raise OutputError(f"-o {output} is a file, not a folder: give a folder or a .png path")
    return free_path(output, job.name), False


def run_jobs(
    resolved: ResolvedSettings,
    jobs: list[Job],
    output: Path,
    reporter: Reporter,
    overwrite: bool = False,
) -> Outcome:
    """Load the model once, then make and write each job's image; a failed job does not stop the rest."""
    if output.suffix.lower() == ".png" and len(jobs) > 1:
        raise OutputError(f"-o {output} names one file, but this run makes {len(jobs)} images: give a folder")
    backend = open_backend(resolved, reporter)
    outcome = Outcome()
    for index, job in enumerate(jobs):
        seed = derive_seed(resolved.settings.seed, job.key or job.name)
        reporter.job_started(index, len(jobs), job.name, job.steps)
        started = time.perf_counter()
        try:
            torch.manual_seed(seed)
            image = job.make(backend, seed)
            path, explicit = _destination(output, job, single=len(jobs) == 1)
            metadata = {
                "adcli_version": adcli.__version__,
                **resolved.as_dict(),
                "inputs": job.inputs,
                "seed": seed,
                "model_arch": backend.arch,
            }
            write_png(image, path, metadata, overwrite=overwrite and explicit)
        except torch.cuda.OutOfMemoryError:
            error = OutOfMemory(
                "out of GPU memory: try --dtype fp16, a smaller --size, or close other GPU programs"
            )
            outcome.failed.append((job.name, str(error)))
            reporter.job_failed(job.name, str(error))
            if len(jobs) == 1:
                raise error from None
            continue
        except AdcliError as error:
            if len(jobs) == 1:
                raise
            outcome.failed.append((job.name, str(error)))
            reporter.job_failed(job.name, str(error))
            continue
        outcome.written.append(path)
        reporter.job_done(job.name, path, time.perf_counter() - started)
    return outcome
