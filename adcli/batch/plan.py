"""A run's job list made concrete before any work: output paths, seeds, metadata; and its results.

Planning is deterministic, so every process of a multi-process run plans the same list and the
dry run shows exactly what a real run would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adcli.errors import InputError, OutputError
from adcli.presets import ResolvedSettings
from adcli.tasks.jobs import Job, derive_seed
from adcli.outputs.naming import COMMON_FIELDS, NameTemplate, clean_value, relative_name
from adcli.outputs.files import DEFAULT_QUALITY, OUTPUT_FORMATS, format_suffix, is_image_file_path
from adcli.outputs.metadata import PEAK_KEY, job_metadata


@dataclass(frozen=True)
class BatchOptions:
    """How a run treats its job list: the command-line batch options."""

    pair: str = "product"
    manifest: Path | None = None
    name: str | None = None
    resume: bool = False
    dry_run: bool = False
    batch_size: int = 1
    report: Path | None = None
    overwrite: bool = False
    animation: Path | None = None
    animation_every: int | None = None
    sheet: Path | None = None
    format: str | None = None  # png | jpg | webp for outputs in a folder (None: png; a file -o names its own)
    quality: int = DEFAULT_QUALITY  # JPEG/WebP quality, 1–100


@dataclass
class PlannedJob:
    """A job with everything decided: settings, seed, output path and the metadata to store."""

    index: int
    job: Job
    resolved: ResolvedSettings
    seed: int
    path: Path
    explicit: bool
    metadata: dict[str, Any]


@dataclass
class JobResult:
    """What became of one job; one line of the --report file."""

    index: int
    name: str
    status: str  # one of batch.status.STATUSES
    output: str | None = None
    seconds: float = 0.0
    error: str | None = None
    seed: int = 0
    rank: int = 0
    exit_code: int = 0
    losses: list[list[float]] = field(default_factory=list)  # [step, loss] every few steps
    peak_gpu_gb: float | None = None  # the peak GPU memory while it was made; None (left out) on a CPU
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        row = {
            "index": self.index, "name": self.name, "status": self.status, "output": self.output,
            "seconds": round(self.seconds, 3), "error": self.error, "seed": self.seed, "rank": self.rank, "losses": self.losses,
        }
        if self.peak_gpu_gb is not None:
            row[PEAK_KEY] = self.peak_gpu_gb
        return row

    def __getstate__(self) -> dict[str, Any]:  # exceptions need not survive the trip to the main process
        return {**self.__dict__, "exception": None}


def name_fields(job: Job, index: int, resolved: ResolvedSettings, seed: int) -> dict[str, Any]:
    return {**job.fields, "name": job.name, "task": resolved.task, "index": index,
            "seed": resolved.settings.seed, "item_seed": seed}


def _stem(job: Job, fields: dict[str, Any], template: NameTemplate | None) -> str:
    if job.output_name:
        return NameTemplate(job.output_name, "the manifest's name").render(fields)
    if template is not None:
        return template.render(fields)
    return relative_name(clean_value(job.name))


def output_suffix(output: Path, image_format: str | None = None) -> tuple[bool, str]:
    """Whether ``-o output`` is one file, and the suffix of the files the run writes.

    A file's suffix names its format (``--format``, if given too, must agree); a folder's files
    take ``--format`` (default png). Any other suffix is a one-line error.
    """
    if is_image_file_path(output):
        suffix = output.suffix.lower()
        if image_format is not None and OUTPUT_FORMATS[format_suffix(image_format)] != OUTPUT_FORMATS[suffix]:
            raise OutputError(f"-o {output} is a {suffix} file but --format {image_format} was given: drop one of them")
        return True, output.suffix
    return False, format_suffix(image_format)


class UniqueNames:
    """Output stems made unique within a run, case-insensitively: the second ``cat`` becomes
    ``cat_2``, the third ``cat_3`` (e.g. a/cat.jpg, b/cat.jpg, c/cat.jpg).

    Each stem remembers the next number to try, so a run of n jobs with one name costs n claims,
    not n²/2 (a 100,000-row manifest of one pair); the names are those of trying 2, 3, … each time,
    as every number below the remembered one is taken already.
    """

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.next_number: dict[str, int] = {}

    def claim(self, base: str) -> str:
        stem = base
        if stem.lower() in self.used:
            number = self.next_number.get(base.lower(), 2)
            while f"{base}_{number}".lower() in self.used:
                number += 1
            self.next_number[base.lower()] = number + 1
            stem = f"{base}_{number}"
        self.used.add(stem.lower())
        return stem


def plan_jobs(jobs: list[Job], output: Path, name: str | None = None, image_format: str | None = None) -> list[PlannedJob]:
    """Seeds, unique output paths and metadata for ``jobs`` (``image_format``: ``--format``, the
    format of the images written into a folder)."""
    if not jobs:
        raise InputError("nothing to do: the inputs give no jobs")
    single_file, suffix = output_suffix(output, image_format)
    if single_file and len(jobs) > 1:
        raise OutputError(f"-o {output} names one file, but this run makes {len(jobs)} images: give a folder")
    if single_file and name:
        raise InputError(f"--name needs -o to be a folder, not a {suffix} file")
    if not single_file and output.exists() and not output.is_dir():
        raise OutputError(f"-o {output} is a file, not a folder: give a folder or a .png, .jpg or .webp path")
    template = NameTemplate(name) if name else None
    if template is not None:
        template.check(set(COMMON_FIELDS) | set(jobs[0].fields))
    names = UniqueNames()
    planned = []
    metadata_of: dict[tuple[int, int], dict[str, Any]] = {}  # jobs of identical manifest rows share one Job
    for index, job in enumerate(jobs):
        settings = job.settings
        seed = job.seed if job.seed is not None else derive_seed(settings.settings.seed, job.key or job.name)
        if single_file:
            path = output
        else:
            path = output / f"{names.claim(_stem(job, name_fields(job, index, settings, seed), template))}{suffix}"
        if (id(job), seed) not in metadata_of:
            metadata_of[id(job), seed] = job_metadata(settings, job.inputs, list(job.files), seed)
        metadata = metadata_of[id(job), seed]
        planned.append(PlannedJob(index, job, settings, seed, path, single_file, metadata))
    return planned
