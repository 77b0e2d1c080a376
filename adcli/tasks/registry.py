"""Each command's task, in one table: its inputs class (the roles: manifest columns, stored inputs
of a rerun, the API's arguments), how one set of inputs becomes a job, and the function that
makes a group of jobs' images.

``run(model, items, settings, seeds, callback) -> images``: ``items`` are the jobs' inputs
(paths, prompts, indices — or, from the API, pictures in memory), read by role name, one image
per item. The run functions live with the model libraries and are imported when the first
image is made, so that planning and ``--dry-run`` never load torch.

Adding a command: its inputs class (tasks/inputs.py), its job builder (tasks/jobs.py), its run
function (tasks/<command>.py) and one entry here; then its settings (presets/table.py and
``configs/<command>.yaml``), its CLI module and its API function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from adcli.errors import InputError
from adcli.presets import ResolvedSettings
from adcli.tasks.inputs import (
    AppearanceInputs,
    ExpandInputs,
    Inputs,
    Role,
    StyleTransferInputs,
    T2IInputs,
    TextureInputs,
)
from adcli.tasks.jobs import Job, Note, expand_job, t2i_job, texture_job, transfer_job
from adcli.tasks.masked_inputs import masked_texture_job

if TYPE_CHECKING:
    from PIL import Image

    from adcli.engine.progress import ProgressCallback
    from adcli.tasks.model import Model

JobBuilder = Callable[[ResolvedSettings, Any, Optional[bool], Optional[Note]], Job]


@dataclass(frozen=True)
class RunFunction:
    """``module.function(model, items, settings, seeds, callback, **keywords)``, imported on first use."""

    module: str
    function: str
    keywords: dict[str, Any] = field(default_factory=dict)

    def __call__(self, model: Model, items: Sequence[Any], settings: Any, seeds: Sequence[int],
                 callback: ProgressCallback | None = None, **options: Any) -> list[Image.Image]:
        run = getattr(importlib.import_module(self.module), self.function)
        return run(model, items, settings, seeds, callback, **self.keywords, **options)


@dataclass(frozen=True)
class Task:
    inputs: type[Inputs]
    build: JobBuilder
    run: RunFunction

    @property
    def roles(self) -> tuple[Role, ...]:
        return self.inputs.roles()

    def job(self, resolved: ResolvedSettings, inputs: Inputs | dict[str, Any], numbered: bool | None = None,
            note: Note | None = None) -> Job:
        """The job of one set of inputs (an inputs object, or a mapping of role → value)."""
        return self.build(resolved, self.inputs.of(inputs), numbered, note)


def _transfer_job(task: str) -> JobBuilder:
    return lambda resolved, inputs, numbered=None, note=None: transfer_job(task, resolved, inputs, numbered, note)


def _texture_job(resolved: ResolvedSettings, inputs: TextureInputs, numbered: bool | None = None,
                 note: Note | None = None) -> Job:
    build = masked_texture_job if inputs.masked else texture_job
    return build(resolved, inputs, numbered, note)


TASKS: dict[str, Task] = {
    "style-transfer": Task(
        StyleTransferInputs, _transfer_job("style-transfer"),
        RunFunction("adcli.tasks.transfer", "run_transfer", {"inputs": StyleTransferInputs}),
    ),
    "appearance": Task(
        AppearanceInputs, _transfer_job("appearance"),
        RunFunction("adcli.tasks.transfer", "run_transfer", {"inputs": AppearanceInputs}),
    ),
    "texture": Task(TextureInputs, _texture_job, RunFunction("adcli.tasks.texture", "run_texture")),
    "t2i": Task(T2IInputs, t2i_job, RunFunction("adcli.tasks.t2i", "run_t2i")),
    "expand": Task(ExpandInputs, expand_job, RunFunction("adcli.tasks.expand", "run_expand")),
}


def make_images(
    model: Model, name: str, items: Sequence[Any], settings: Any, seeds: Sequence[int],
    callback: ProgressCallback | None = None, **options: Any,
) -> list[Image.Image]:
    """The pictures of ``items`` by the task ``name``, as the batch runner and the public API make
    them: torch's global seed set from the first item's (a bit-exact rerun), inside the model's session;
    the GPU memory's peak while they were made is kept as ``model.peak_gpu_gb`` (None on a CPU).
    ``options``: what only the API gives a run function (t2i's start ``latents``)."""
    import torch  # loaded with the model, never by planning

    from adcli.engine.memory import peak_memory

    torch.manual_seed(seeds[0])
    with model.session(), peak_memory(model.backend.device) as peak:
        images = task(name).run(model, items, settings, seeds, callback, **options)
    model.peak_gpu_gb = peak.gb
    return images


def task(name: str) -> Task:
    if name not in TASKS:
        raise InputError(f"`adcli {name}` does not take a manifest or a rerun")
    return TASKS[name]
