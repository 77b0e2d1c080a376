"""Jobs are plain data: one output image each, its inputs, settings and seed. Nothing to call.

The batch runner (batch/runner.py) groups jobs and hands each group to its task's ``run``
function (tasks/registry.py); the public API calls the same functions directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adcli.presets import ResolvedSettings


class Reporter(Protocol):
    """How a batch run tells the CLI what happens; nothing below the CLI prints."""

    def loading(self, what: str) -> None: ...
    def job_started(self, index: int, total: int, name: str, steps: int) -> None: ...
    def step(self, info: dict[str, Any]) -> None: ...
    def job_done(self, name: str, path: Path, seconds: float) -> None: ...
    def job_failed(self, name: str, message: str) -> None: ...
    def job_skipped(self, name: str, path: Path) -> None: ...
    def info(self, message: str) -> None: ...


def settings_key(settings: Any) -> tuple:
    """A job's settings as a hashable group key, its seed left out: jobs that differ only in
    their seeds can share one UNet batch."""
    return tuple(sorted((k, str(v)) for k, v in settings.as_dict().items() if k != "seed"))


def derive_seed(seed: int, key: str) -> int:
    """A per-job seed from the run's seed and the job's identity, so a job rerun alone matches."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass(frozen=True)
class Job:
    """One output image.

    ``inputs`` are what the task reads (paths, prompts, indices) and what metadata records;
    ``fields`` fill ``--name`` templates; ``files`` are hashed for ``--resume``; ``group``: jobs
    with equal groups may be made in one UNet batch (``--batch-size``); ``seed`` fixed (rerun)
    or derived from ``key``; ``output_name`` a manifest row's name template.
    """

    task: str
    inputs: dict[str, Any]
    settings: ResolvedSettings
    name: str
    key: str
    steps: int
    fields: dict[str, Any] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    group: Hashable | None = None
    seed: int | None = None
    output_name: str | None = None
