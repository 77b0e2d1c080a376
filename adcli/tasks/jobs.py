"""Jobs are plain data: one output image each, its inputs, settings and seed. Nothing to call.

Each command's job builder turns one set of its inputs (tasks/inputs.py) into a job: the name,
what metadata records, the files ``--resume`` hashes, and which jobs may share a UNet batch. The
batch runner (batch/runner.py) groups jobs and hands each group to its task's ``run`` function
(tasks/registry.py); the public API calls the same functions directly. No model library is
imported here: planning and ``--dry-run`` stay fast.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adcli.engine.config import sdedit_start
from adcli.errors import InputError, setting
from adcli.outputs.naming import slug
from adcli.presets import ResolvedSettings
from adcli.tasks.inputs import (
    ExpandInputs,
    Inputs,
    T2IInputs,
    TextureInputs,
    require_files,
    source_files,
    source_label,
    source_record,
)

Note = Callable[[str], None]  # a one-line remark for the user (the CLI prints it, the API warns)


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


def transfer_job(task: str, resolved: ResolvedSettings, inputs: Inputs, numbered: bool | None = None,
                 note: Note | None = None) -> Job:
    """The job for one content image and its reference set (style transfer, appearance transfer)."""
    content_role, reference_role = inputs.role_of_kind("image"), inputs.role_of_kind("images")
    content, references = inputs[content_role], list(inputs[reference_role])
    reference_stems = "_".join(source_label(r, "reference") for r in references)
    name = f"{source_label(content, content_role)}_{reference_stems}"
    settings = resolved.settings
    return Job(
        task=task,
        inputs={content_role: source_record(content), reference_role: [source_record(r) for r in references]},
        settings=resolved,
        name=name,
        key=name,
        steps=settings.iterations,
        fields={content_role: source_label(content, content_role), reference_role: reference_stems},
        files=source_files([content, *references]),
        group=(task, tuple(map(str, references)), settings_key(settings)),
    )


def texture_job(resolved: ResolvedSettings, inputs: TextureInputs, numbered: bool | None = None,
                note: Note | None = None) -> Job:
    """Texture number ``image_index`` of a reference set (from its own seed); label maps: masked_inputs.py."""
    settings = resolved.settings
    references = list(inputs.reference)
    index = int(inputs.image_index or 0)
    stem = "_".join(source_label(r, "reference") for r in references)
    numbered = index > 0 if numbered is None else numbered
    sampling = settings.mode == "sample"
    return Job(
        task="texture",
        inputs={"reference": [source_record(r) for r in references], "image_index": index},
        settings=resolved,
        name=f"{stem}_texture_{index}" if numbered else f"{stem}_texture",
        key=f"{stem}#{index}",
        steps=settings.steps if sampling else settings.iterations,
        fields={"reference": stem, "image_index": index},
        files=source_files(references),
        # sampling runs one image at a time; optimization batches images of the same references
        group=None if sampling else ("texture", tuple(map(str, references)), settings_key(settings)),
    )


def check_t2i_inputs(settings: Any, inputs: T2IInputs) -> None:
    """Every input file exists and a ControlNet has its image, before any model loads."""
    require_files(list(inputs.style), "style image")
    if inputs.layout is not None:
        require_files([inputs.layout], "layout image")
    if settings.controlnet and inputs.control is None:
        raise InputError(f"ControlNet {settings.controlnet} needs a control image: pass --control IMAGE")
    if inputs.control is not None:
        if not settings.controlnet:
            raise InputError(f"--control needs a ControlNet: pass {setting('controlnet')} ID_OR_PATH (or tiny with a tiny model)")
        require_files([inputs.control], "control image")


def t2i_job(resolved: ResolvedSettings, inputs: T2IInputs, numbered: bool | None = None, note: Note | None = None) -> Job:
    """Image number ``image_index`` of one prompt in the style of its style set (several styles:
    token-axis concat), optionally from a layout and with a ControlNet image. Sampling jobs run
    alone (no ``group``): each has its own prompt and noise."""
    settings = resolved.settings
    check_t2i_inputs(settings, inputs)
    prompt, styles = str(inputs.prompt), list(inputs.style)
    layout, control = inputs.layout, inputs.control
    index = int(inputs.image_index or 0)
    steps = settings.steps - (sdedit_start(settings.steps, settings.strength) if layout is not None else 0)
    style_stems = "_".join(source_label(s, "style") for s in styles)
    return Job(
        task="t2i",
        inputs={
            "prompt": prompt, "style": [source_record(s) for s in styles], "image_index": index,
            "layout": None if layout is None else source_record(layout),
            "control": None if control is None else source_record(control),
        },
        settings=resolved,
        name=f"{slug(prompt)}_{style_stems}" + (f"_{index}" if index > 0 else ""),
        key=f"{prompt}#{index}",
        steps=steps,
        fields={
            "prompt": slug(prompt), "style": style_stems, "image_index": index,
            "layout": "" if layout is None else source_label(layout), "control": "" if control is None else source_label(control),
        },
        files=source_files([*styles, *[p for p in (layout, control) if p is not None]]),
    )


def expand_job(resolved: ResolvedSettings, inputs: ExpandInputs, numbered: bool | None = None, note: Note | None = None) -> Job:
    """Expansion number ``image_index`` of a reference set, at the settings' exact size."""
    settings = resolved.settings
    width, height = settings.size_spec().exact
    references = require_files(list(inputs.reference), "reference image")
    index = int(inputs.image_index or 0)
    stem = "_".join(source_label(r, "reference") for r in references)
    numbered = index > 0 if numbered is None else numbered
    return Job(
        task="expand",
        inputs={"reference": [source_record(r) for r in references], "image_index": index},
        settings=resolved,
        name=f"{stem}_{width}x{height}" + (f"_{index}" if numbered else ""),
        key=f"{stem}#{index}",
        steps=settings.steps,
        fields={"reference": stem, "image_index": index},
        files=source_files(references),
    )
