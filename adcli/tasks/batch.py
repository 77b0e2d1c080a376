"""Running a planned job list: model loaded once, resume, batches, failures isolated, clean stops.

A job that fails (unreadable image, NaN, out of memory, a bug) is recorded and the others go on;
a full disk stops the run (nothing more could be written); ``should_stop`` (Ctrl-C) is checked
between images, so the current one is finished and written before the run stops.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

import torch
from PIL import Image

from adcli.engine.models import Backend
from adcli.errors import AdcliError, OutOfMemory, OutputError, StorageFull
from adcli.tasks.jobs import Reporter, open_backend
from adcli.tasks.outputs import write_image, write_image_free
from adcli.tasks.plan import BatchOptions, JobResult, PlannedJob
from adcli.tasks.resume import find_same
from adcli.tasks.sharding import Shard

INTERRUPTED = "interrupted"


def out_of_memory_message(batch: int, settings: object) -> str:
    """One line saying what to lower, for the options this command has."""
    hints = ["a smaller --batch-size"] if batch > 1 else []
    hints.append("--dtype fp16")
    if hasattr(settings, "window_batch"):
        hints.append("a smaller --window-batch")
    hints.append("a smaller --size")
    return f"out of GPU memory: try {', '.join(hints[:-1])} or {hints[-1]}"


def _message(error: BaseException, batch: int, settings: object) -> tuple[str, int]:
    if isinstance(error, torch.OutOfMemoryError):
        return out_of_memory_message(batch, settings), 1
    if isinstance(error, AdcliError):
        return str(error), error.exit_code
    return f"internal error: {type(error).__name__}: {error} (set ADCLI_DEBUG=1 to see the traceback)", 1


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _backend_key(planned: PlannedJob) -> tuple:
    s = planned.resolved.settings
    return (s.model, s.model_config, s.vae, s.dtype, s.device)


def _grouped(items: list[PlannedJob], key: Callable[[PlannedJob], Hashable]) -> list[list[PlannedJob]]:
    """Items with equal keys together, groups in the order their first item appears."""
    groups: dict[Hashable, list[PlannedJob]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def chunks(items: list[PlannedJob], batch_size: int) -> Iterator[list[PlannedJob]]:
    """Batches of up to ``batch_size`` jobs that can share one UNet batch; others one by one, in order."""
    if batch_size <= 1:
        yield from ([item] for item in items)
        return

    def key(item: PlannedJob) -> Hashable:
        job = item.job
        return ("group", job.group) if job.group is not None and job.make_group else ("alone", item.index)

    for group in _grouped(items, key):
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


@dataclass
class _Run:
    """The state of one process's share of a run."""

    options: BatchOptions
    reporter: Reporter
    shard: Shard
    should_stop: Callable[[], bool]
    total: int
    single: bool = False  # a one-job run: its error is raised at the end instead of reported here
    results: dict[int, JobResult] = field(default_factory=dict)
    started: int = 0
    stop: str | None = None

    def result(self, planned: PlannedJob, status: str, **values) -> None:
        self.results[planned.index] = JobResult(
            planned.index, planned.job.name, status, seed=planned.seed, rank=self.shard.rank, **values
        )

    def fail(self, planned: PlannedJob, error: BaseException, batch: int = 1) -> None:
        message, code = _message(error, batch, planned.resolved.settings)
        if isinstance(error, torch.OutOfMemoryError):
            error = OutOfMemory(message)
        self.result(planned, "failed", error=message, exit_code=code, exception=error)
        if not self.single:
            self.reporter.job_failed(planned.job.name, message)

    def skip_rest(self, items: list[PlannedJob]) -> None:
        for planned in items:
            if planned.index not in self.results:
                self.result(planned, "not-run", error=self.stop)

    def save(self, backend: Backend, planned: PlannedJob, image: Image.Image, seconds: float) -> None:
        metadata = {**planned.metadata, "model_arch": backend.arch}
        try:
            if planned.explicit or self.options.overwrite:
                path = write_image(image, planned.path, metadata, self.options.overwrite, self.options.quality)
            else:
                path = write_image_free(image, planned.path, metadata, self.options.quality)
        except StorageFull as error:
            self.fail(planned, error)
            self.stop = str(error)
            return
        except OutputError as error:
            self.fail(planned, error)
            return
        self.result(planned, "done", output=str(path), seconds=seconds)
        self.reporter.job_done(planned.job.name, path, seconds)

    def announce(self, chunk: list[PlannedJob]) -> None:
        name = chunk[0].job.name + (f" (+{len(chunk) - 1} in one batch)" if len(chunk) > 1 else "")
        self.reporter.job_started(self.started, self.total, name, chunk[0].job.steps)
        self.started += len(chunk)

    def make_together(self, backend: Backend, chunk: list[PlannedJob]) -> bool:
        """One UNet batch for the chunk; False (and nothing recorded) if it failed as a whole."""
        self.announce(chunk)
        began = time.perf_counter()
        try:
            torch.manual_seed(chunk[0].seed)
            images = chunk[0].job.make_group(backend, [p.job for p in chunk], [p.seed for p in chunk])
        except Exception as error:  # noqa: BLE001 — retried one by one below
            message, _ = _message(error, len(chunk), chunk[0].resolved.settings)
            self.reporter.info(f"a batch of {len(chunk)} failed ({message}); making its images one at a time")
            self.started -= len(chunk)
            _free_memory()
            return False
        seconds = (time.perf_counter() - began) / len(chunk)
        for planned, image in zip(chunk, images, strict=True):
            if self.stop:
                self.fail(planned, OutputError(self.stop))
            else:
                self.save(backend, planned, image, seconds)
        return True

    def make_alone(self, backend: Backend, planned: PlannedJob) -> None:
        self.announce([planned])
        began = time.perf_counter()
        try:
            torch.manual_seed(planned.seed)
            image = planned.job.make(backend, planned.seed)
        except Exception as error:  # noqa: BLE001 — isolation: one job's failure must not end the batch
            self.fail(planned, error)
            _free_memory()
            return
        self.save(backend, planned, image, time.perf_counter() - began)

    def run_chunk(self, backend: Backend, chunk: list[PlannedJob]) -> None:
        if len(chunk) > 1 and self.make_together(backend, chunk):
            return
        for planned in chunk:
            if self.stop is None and planned is not chunk[0] and self.should_stop():
                self.stop = INTERRUPTED
            if self.stop:
                return
            self.make_alone(backend, planned)

    def run_model(self, items: list[PlannedJob], only_model: bool) -> None:
        """The jobs that share one model: load it once, then make them."""
        settings = items[0].resolved
        try:
            backend = open_backend(settings, self.reporter, self.shard.device(settings.settings.device))
        except AdcliError as error:
            if only_model:
                raise
            for planned in items:
                self.fail(planned, error)
            return
        try:
            for chunk in chunks(items, self.options.batch_size):
                if self.stop is None and self.should_stop():
                    self.stop = INTERRUPTED
                if self.stop:
                    break
                try:
                    self.run_chunk(backend, chunk)
                except KeyboardInterrupt:  # a second Ctrl-C: stop now; the image being made is dropped
                    self.stop = INTERRUPTED
        finally:
            del backend
            _free_memory()
        self.skip_rest(items)


def run_plan(
    plan: list[PlannedJob],
    options: BatchOptions,
    reporter: Reporter,
    shard: Shard = Shard(),
    should_stop: Callable[[], bool] = lambda: False,
) -> list[JobResult]:
    """Make this process's share of ``plan``; one result per job it owns, in plan order."""
    mine = [planned for planned in plan if shard.owns(planned.index)]
    run = _Run(options, reporter, shard, should_stop, total=0, single=len(plan) == 1)
    todo = []
    for planned in mine:
        found = find_same(planned.path, planned.metadata) if options.resume else None
        if found is not None:
            run.result(planned, "skipped", output=str(found))
            reporter.job_skipped(planned.job.name, found)
        elif planned.explicit and planned.path.exists() and not options.overwrite:
            raise OutputError(f"{planned.path} already exists: choose another -o, or pass --overwrite to replace it")
        else:
            todo.append(planned)
    run.total = len(todo)
    if len(todo) < len(mine):
        reporter.info(f"--resume: {len(mine) - len(todo)} of {len(mine)} job(s) already done with the same settings")
    one_model = len({_backend_key(planned) for planned in plan}) == 1  # a bad model is then a usage error
    for items in _grouped(todo, _backend_key):
        try:
            if run.stop is None:
                run.run_model(items, only_model=one_model)
        except KeyboardInterrupt:  # a second Ctrl-C between images (e.g. while a model is freed)
            run.stop = INTERRUPTED
        run.skip_rest(items)
    return [run.results[planned.index] for planned in mine]
