"""Running a planned job list: model loaded once, resume, batches, failures isolated, clean stops.

A job that fails (unreadable image, NaN, out of memory, a bug) is recorded and the others go on;
a full disk stops the run (nothing more could be written); ``should_stop`` (Ctrl-C) is checked
between images, so the current one is finished and written before the run stops.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from PIL import Image

from adcli.batch.plan import BatchOptions, JobResult, PlannedJob
from adcli.batch.resume import find_same
from adcli.batch.sharding import Shard
from adcli.batch.status import DONE, FAILED, INTERRUPTED, NOT_RUN, SKIPPED, out_of_memory_message
from adcli.errors import AdcliError, OutOfMemory, OutputError, StorageFull, as_keyword
from adcli.outputs.files import write_image, write_image_free
from adcli.outputs.metadata import PEAK_KEY, job_metadata
from adcli.presets import for_arch
from adcli.tasks.jobs import Reporter
from adcli.tasks.model import Model, loading_settings, open_model, planned_pixels
from adcli.tasks.registry import make_images

Spell = Callable[[str], str]  # how a message spells a setting: the CLI's flag, the API's keyword
LOSS_EVERY = 5  # the loss history a report keeps: one value every N iterations/steps


class JobWatcher(Protocol):
    """Watches one batch of jobs being made (a live preview, an animation): fed the engine's
    progress, then told the pictures (or None when they failed)."""

    def __call__(self, info: dict[str, Any]) -> None: ...
    def close(self, images: list[Image.Image] | None) -> None: ...


Watch = Callable[[list[PlannedJob], Model], JobWatcher | None]


def _message(error: BaseException, batch: int, task: str, spell: Spell) -> tuple[str, int]:
    if isinstance(error, torch.OutOfMemoryError):
        error = OutOfMemory(out_of_memory_message(task, batch))
    if isinstance(error, AdcliError):
        return error.render(spell), error.exit_code
    return f"internal error: {type(error).__name__}: {error} (set ADCLI_DEBUG=1 to see the traceback)", 1


def _free_memory() -> None:
    """Give the GPU back what a finished model or a failed batch held (tensors kept alive by the
    reference cycles of a traceback need a collection first). Without CUDA there is nothing to give
    back at once: a full collection costs up to half a second in a large process, for nothing."""
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def _model_key(planned: PlannedJob) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in loading_settings(planned.resolved.settings).items()))


def _grouped(items: list[PlannedJob], key: Callable[[PlannedJob], Hashable]) -> list[list[PlannedJob]]:
    """Items with equal keys together, groups in the order their first item appears."""
    groups: dict[Hashable, list[PlannedJob]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def resolve_arch(planned: PlannedJob, arch: str) -> None:
    """A job whose per-architecture settings waited for the model (its configs could not be read
    before it loaded), resolved for ``arch`` in place: its settings and metadata as if known from
    the start (the plan's report shows them too)."""
    if planned.resolved.needs_arch:
        planned.resolved = for_arch(planned.resolved, arch)
        planned.job = dataclasses.replace(planned.job, settings=planned.resolved)
        planned.metadata = job_metadata(planned.resolved, planned.job.inputs, list(planned.job.files), planned.seed)


def chunks(items: list[PlannedJob], batch_size: int) -> Iterator[list[PlannedJob]]:
    """Batches of up to ``batch_size`` jobs that can share one UNet batch; others one by one, in order."""
    if batch_size <= 1:
        yield from ([item] for item in items)
        return
    for group in _grouped(items, lambda p: ("group", p.job.group) if p.job.group is not None else ("alone", p.index)):
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


class Stop:
    """The run's one stop policy: a stop asked for (Ctrl-C, SIGTERM; checked between images) or
    forced (a full disk). Once stopped, the jobs not yet made are recorded as not run."""

    def __init__(self, requested: Callable[[], bool]):
        self.requested = requested
        self.reason: str | None = None

    def __call__(self) -> str | None:
        if self.reason is None and self.requested():
            self.reason = INTERRUPTED
        return self.reason

    def force(self, reason: str) -> None:
        self.reason = self.reason or reason


@dataclass
class _Progress:
    """The engine's progress for a batch of jobs: to the reporter, the watchers and each job's own
    loss history. The engine's ``losses`` hold one value per item of the batch, in item order
    (``loss``, their mean, stands in where an engine loop gives no ``losses``)."""

    reporter: Reporter
    watcher: JobWatcher | None
    count: int = 1
    histories: list[list[list[float]]] = field(default_factory=list)  # per job: [step, loss] every few steps

    def __post_init__(self) -> None:
        self.histories = [[] for _ in range(self.count)]

    def own_losses(self, info: dict[str, Any]) -> list[float | None]:
        losses = info.get("losses")
        if losses is not None and len(losses) == self.count:
            return list(losses)
        return [info.get("loss")] * self.count

    def __call__(self, info: dict[str, Any]) -> None:
        own = self.own_losses(info)
        self.reporter.step({**info, "loss": own[0]})  # the bar is named after the batch's first job
        final = info.get("ad_iteration", 0) == info.get("ad_iterations", 0)
        due = info["step"] % LOSS_EVERY == 0 or info["step"] == info["total"]
        if final and due:
            for history, loss in zip(self.histories, own):
                if loss is None:
                    continue
                value = round(float(loss), 6)
                # the engine reads the loss back only now and then: keep fresh values, not their repeats
                if not history or (history[-1][0] != info["step"] and history[-1][1] != value):
                    history.append([info["step"], value])
        if self.watcher is not None:
            self.watcher(info)


@dataclass
class Runner:
    """Makes planned jobs with one loaded model and records what became of each."""

    options: BatchOptions
    reporter: Reporter
    stop: Stop
    watch: Watch | None = None
    rank: int = 0
    spell: Spell = as_keyword
    single: bool = False  # a one-job run: its error is raised by the caller instead of reported here
    on_result: Callable[[JobResult], None] | None = None  # e.g. rewrite the HTML report after each job
    results: dict[int, JobResult] = field(default_factory=dict)
    started: int = 0
    total: int = 0

    def record(self, planned: PlannedJob, status: str, **values: Any) -> JobResult:
        result = JobResult(planned.index, planned.job.name, status, seed=planned.seed, rank=self.rank, **values)
        self.results[planned.index] = result
        if self.on_result is not None:
            self.on_result(result)
        return result

    def fail(self, planned: PlannedJob, error: BaseException, batch: int = 1, announce: bool = True) -> None:
        message, code = _message(error, batch, planned.job.task, self.spell)
        if isinstance(error, torch.OutOfMemoryError):
            error = OutOfMemory(out_of_memory_message(planned.job.task, batch))
        self.record(planned, FAILED, error=message, exit_code=code, exception=error)
        if announce:
            self.reporter.job_failed(planned.job.name, message)

    def save(self, model: Model, planned: PlannedJob, image: Image.Image, seconds: float, losses: list) -> None:
        metadata = model.record(planned.metadata, image)
        try:
            if planned.explicit or self.options.overwrite:
                path = write_image(image, planned.path, metadata, self.options.overwrite, self.options.quality)
            else:
                path = write_image_free(image, planned.path, metadata, self.options.quality)
        except StorageFull as error:
            self.fail(planned, error)
            self.stop.force(str(error))
            return
        except OutputError as error:
            self.fail(planned, error)
            return
        self.record(planned, DONE, output=str(path), seconds=seconds, losses=losses, peak_gpu_gb=metadata.get(PEAK_KEY))
        self.reporter.job_done(planned.job.name, path, seconds)

    def make(self, model: Model, chunk: list[PlannedJob]) -> list[Image.Image]:
        """The chunk's pictures from its task's run function, with progress going up."""
        name = chunk[0].job.name + (f" (+{len(chunk) - 1} in one batch)" if len(chunk) > 1 else "")
        self.reporter.job_started(self.started, self.total, name, chunk[0].job.steps)
        watcher = self.watch(chunk, model) if self.watch is not None else None
        progress = _Progress(self.reporter, watcher, len(chunk))
        began = time.perf_counter()
        images = None
        try:
            images = make_images(
                model, chunk[0].job.task, [p.job.inputs for p in chunk], chunk[0].resolved.settings,
                [p.seed for p in chunk], progress,
            )
        finally:
            if watcher is not None:
                watcher.close(images)
        seconds = (time.perf_counter() - began) / len(chunk)
        for planned, image, losses in zip(chunk, images, progress.histories, strict=True):
            if self.stop.reason is not None:
                self.fail(planned, OutputError(self.stop.reason))
            else:
                self.save(model, planned, image, seconds, losses)
        self.started += len(chunk)
        return images

    def make_chunk(self, model: Model, chunk: list[PlannedJob]) -> None:
        """A batch in one go; if it fails as a whole, its jobs one at a time (each failure its own)."""
        if len(chunk) > 1:
            try:
                self.make(model, chunk)
                return
            except Exception as error:  # noqa: BLE001 — retried one by one below
                message, _ = _message(error, len(chunk), chunk[0].job.task, self.spell)
                self.reporter.info(f"a batch of {len(chunk)} failed ({message}); making its images one at a time")
                _free_memory()
        for position, planned in enumerate(chunk):
            if position > 0 and self.stop():
                return
            try:
                self.make(model, [planned])
            except Exception as error:  # noqa: BLE001 — isolation: one job's failure must not end the batch
                self.fail(planned, error, announce=not self.single)
                self.started += 1
                _free_memory()

    def run_model(self, items: list[PlannedJob], only_model: bool, shard: Shard) -> None:
        """The jobs that share one model: load it once, then make them."""
        settings = items[0].resolved.settings
        self.reporter.loading(f"model {settings.model}")
        sizes = [planned_pixels(planned.resolved.settings) for planned in items]
        try:
            model = open_model(loading_settings(settings), shard.device(settings.device),
                               pixels=None if None in sizes else max(sizes))
        except AdcliError as error:
            if only_model:
                raise
            for planned in items:
                self.fail(planned, error)
            return
        for note in model.notes:
            self.reporter.info(note)
        for planned in items:
            resolve_arch(planned, model.preset_arch)
        try:
            for chunk in chunks(items, self.options.batch_size):
                if self.stop():
                    break
                try:
                    self.make_chunk(model, chunk)
                except KeyboardInterrupt:  # a second Ctrl-C: stop now; the image being made is dropped
                    self.stop.force(INTERRUPTED)
        finally:
            del model
            _free_memory()


def run_plan(
    plan: list[PlannedJob],
    options: BatchOptions,
    reporter: Reporter,
    shard: Shard = Shard(),
    should_stop: Callable[[], bool] = lambda: False,
    watch: Watch | None = None,
    on_result: Callable[[JobResult], None] | None = None,
    rejected: dict[int, AdcliError] | None = None,
    spell: Spell = as_keyword,
) -> list[JobResult]:
    """Make this process's share of ``plan``; one result per job it owns, in plan order.
    ``rejected``: jobs found unusable before the model loaded (batch/preflight.py), reported first;
    ``spell``: how failure messages spell a setting (the CLI passes its flags)."""
    mine = [planned for planned in plan if shard.owns(planned.index)]
    runner = Runner(options, reporter, Stop(should_stop), watch, rank=shard.rank, spell=spell, single=len(plan) == 1,
                    on_result=on_result)
    todo = []
    rejected = rejected or {}
    for planned in mine:
        found = find_same(planned.path, planned.metadata) if options.resume else None
        if planned.index in rejected:
            runner.fail(planned, rejected[planned.index])
        elif found is not None:
            runner.record(planned, SKIPPED, output=str(found))
            reporter.job_skipped(planned.job.name, found)
        elif planned.explicit and planned.path.exists() and not options.overwrite:
            raise OutputError(f"{planned.path} already exists: choose another -o, or pass --overwrite to replace it")
        else:
            todo.append(planned)
    runner.total = len(todo)
    if len(todo) < len(mine):
        reporter.info(f"--resume: {len(mine) - len(todo)} of {len(mine)} job(s) already done with the same settings")
    one_model = len({_model_key(planned) for planned in plan}) == 1  # a bad model is then a usage error
    for items in _grouped(todo, _model_key):
        try:
            if runner.stop() is None:
                runner.run_model(items, only_model=one_model, shard=shard)
        except KeyboardInterrupt:  # a second Ctrl-C between images (e.g. while a model is freed)
            runner.stop.force(INTERRUPTED)
    for planned in mine:
        if planned.index not in runner.results:
            runner.record(planned, NOT_RUN, error=runner.stop.reason)
    return [runner.results[planned.index] for planned in mine]

