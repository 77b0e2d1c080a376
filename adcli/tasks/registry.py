"""Each command's task: its inputs (manifest columns, stored inputs of a rerun), how one set of
inputs becomes a job, and the plain function that makes a group of jobs' images.

``run(model, items, settings, seeds, callback) -> images``: ``items`` are the jobs' inputs
(paths, prompts, indices — or, from the API, pictures in memory), one image per item.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import torch
from PIL import Image

from adcli.engine.progress import ProgressCallback
from adcli.errors import InputError
from adcli.presets import ResolvedSettings
from adcli.tasks.expand import expand_job, run_expand
from adcli.tasks.jobs import Job
from adcli.tasks.model import Model
from adcli.tasks.t2i import run_t2i, t2i_job
from adcli.tasks.texture import run_texture, texture_job
from adcli.tasks.transfer import APPEARANCE, STYLE_TRANSFER, run_transfer, transfer_job

Run = Callable[[Model, Sequence[dict[str, Any]], Any, Sequence[int], Optional[ProgressCallback]], list[Image.Image]]


@dataclass(frozen=True)
class InputRole:
    """One input of a job: ``image`` (one file), ``images`` (a reference set), ``text`` or ``int``."""

    name: str
    kind: Literal["image", "images", "text", "int"]
    required: bool = True


@dataclass(frozen=True)
class Task:
    roles: tuple[InputRole, ...]
    job: Callable[[ResolvedSettings, dict[str, Any]], Job]
    run: Run


TASKS: dict[str, Task] = {
    "style-transfer": Task(
        (InputRole("content", "image"), InputRole("style", "images")),
        functools.partial(transfer_job, "style-transfer", STYLE_TRANSFER),
        functools.partial(run_transfer, roles=STYLE_TRANSFER),
    ),
    "appearance": Task(
        (InputRole("structure", "image"), InputRole("appearance", "images")),
        functools.partial(transfer_job, "appearance", APPEARANCE),
        functools.partial(run_transfer, roles=APPEARANCE),
    ),
    "texture": Task(
        (
            InputRole("reference", "images"), InputRole("image_index", "int", required=False),
            InputRole("source_mask", "image", required=False), InputRole("target_mask", "image", required=False),
        ),
        texture_job,
        run_texture,
    ),
    "t2i": Task(
        (
            InputRole("prompt", "text"), InputRole("style", "images"), InputRole("image_index", "int", required=False),
            InputRole("layout", "image", required=False), InputRole("control", "image", required=False),
        ),
        t2i_job,
        run_t2i,
    ),
    "expand": Task((InputRole("reference", "images"), InputRole("image_index", "int", required=False)), expand_job, run_expand),
}


def make_images(
    model: Model, name: str, items: Sequence[dict[str, Any]], settings: Any, seeds: Sequence[int],
    callback: ProgressCallback | None = None,
) -> list[Image.Image]:
    """The pictures of ``items`` by the task ``name``, as the batch runner and the public API make
    them: torch's global seed set from the first item's (a bit-exact rerun), inside the model's session."""
    torch.manual_seed(seeds[0])
    with model.session():
        return task(name).run(model, items, settings, seeds, callback)


def task(name: str) -> Task:
    if name not in TASKS:
        raise InputError(f"`adcli {name}` does not take a manifest or a rerun")
    return TASKS[name]


def _path(value: Any, base: Path | None, where: str, role: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {role} must be an image path, got {value!r}")
    path = Path(os.path.expanduser(value.strip()))
    return path if base is None or path.is_absolute() else base / path


def convert_input(role: InputRole, value: Any, base: Path | None, where: str) -> Any:
    """A stored or manifest value → what the task's job builder takes; paths relative to ``base``."""
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
