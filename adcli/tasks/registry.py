"""Each command's job inputs, for manifests and ``adcli rerun``: the columns a job has and how
one set of inputs becomes a job. A command joins by adding a :class:`TaskJobs` to ``TASK_JOBS``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from adcli.errors import AdcliError, InputError
from adcli.presets import ResolvedSettings, load_settings
from adcli.tasks.appearance import appearance_job
from adcli.tasks.expand import expand_job
from adcli.tasks.jobs import Job, JobContext, Reporter
from adcli.tasks.outputs import read_metadata
from adcli.tasks.style_transfer import style_transfer_job
from adcli.tasks.t2i import t2i_job
from adcli.tasks.texture import texture_job


@dataclass(frozen=True)
class InputRole:
    """One input of a job: ``image`` (one file), ``images`` (a reference set), ``text`` or ``int``."""

    name: str
    kind: Literal["image", "images", "text", "int"]
    required: bool = True


@dataclass(frozen=True)
class TaskJobs:
    roles: tuple[InputRole, ...]
    build: Callable[[ResolvedSettings, dict[str, Any], JobContext], Job]


TASK_JOBS: dict[str, TaskJobs] = {
    "style-transfer": TaskJobs((InputRole("content", "image"), InputRole("style", "images")), style_transfer_job),
    "appearance": TaskJobs((InputRole("structure", "image"), InputRole("appearance", "images")), appearance_job),
    "texture": TaskJobs(
        (
            InputRole("reference", "images"), InputRole("image_index", "int", required=False),
            InputRole("source_mask", "image", required=False), InputRole("target_mask", "image", required=False),
        ),
        texture_job,
    ),
    "t2i": TaskJobs(
        (
            InputRole("prompt", "text"), InputRole("style", "images"), InputRole("image_index", "int", required=False),
            InputRole("layout", "image", required=False), InputRole("control", "image", required=False),
        ),
        t2i_job,
    ),
    "expand": TaskJobs((InputRole("reference", "images"), InputRole("image_index", "int", required=False)), expand_job),
}


def task_jobs(task: str) -> TaskJobs:
    if task not in TASK_JOBS:
        raise InputError(f"`adcli {task}` does not take a manifest or a rerun yet")
    return TASK_JOBS[task]


def _path(value: Any, base: Path | None, where: str, role: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {role} must be an image path, got {value!r}")
    path = Path(os.path.expanduser(value.strip()))
    return path if base is None or path.is_absolute() else base / path


def convert_input(role: InputRole, value: Any, base: Path | None, where: str) -> Any:
    """A stored or manifest value → what the task's builder takes; paths relative to ``base``."""
    if role.kind == "image":
        return _path(value, base, where, role.name)
    if role.kind == "images":
        items = value.split(";") if isinstance(value, str) else value
        if not isinstance(items, list) or not [i for i in items if str(i).strip()]:
            raise InputError(f"{where}: {role.name} must be one or more image paths (separate several with ';')")
        return [_path(item, base, where, role.name) for item in items if str(item).strip()]
    if role.kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InputError(f"{where}: {role.name} must be a whole number, got {value!r}") from None
    return str(value)


def job_from_metadata(path: Path, reporter: Reporter, device: str | None = None) -> Job:
    """The job that made the adcli PNG ``path``: its settings, inputs and seed, ready to make again."""
    if not path.is_file():
        raise InputError(f"{path} does not exist: give an image written by adcli")
    metadata = read_metadata(path)
    if metadata is None or "task" not in metadata:
        raise InputError(f"{path} has no adcli settings in it (not written by adcli, or the metadata was stripped)")
    task = metadata["task"]
    spec = task_jobs(task)
    settings = dict(metadata.get("settings") or {})
    if device:
        settings["device"] = device
    try:
        resolved = load_settings(task, None, settings)
    except AdcliError as error:
        raise InputError(f"{path} was written with settings this version cannot use: {error}") from None
    resolved = replace(resolved, preset=metadata.get("preset", resolved.preset), overrides=metadata.get("overrides", {}))
    stored = metadata.get("inputs") or {}
    where = f"{path} (stored inputs)"
    inputs = {
        role.name: convert_input(role, stored[role.name], None, where)
        for role in spec.roles
        if stored.get(role.name) is not None  # an optional input not given (t2i's layout: null)
    }
    job = spec.build(resolved, inputs, JobContext(reporter))
    job.seed = int(metadata["seed"])
    return job
