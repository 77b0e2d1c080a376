"""The part every command shares: resolve settings, plan the jobs, run this process's share, report.

Exit codes: 0 every job done (or skipped by --resume), 1 some failed, 2 a usage error (nothing
was run), 130 interrupted (run the same command with --resume to continue).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from adcli.cli.common import CommonOptions
from adcli.cli.console import RichReporter, flag, stderr
from adcli.cli.interrupt import stop_after_current
from adcli.cli.summary import print_plan, print_summary
from adcli.errors import InputError
from adcli.presets import ResolvedSettings, load_settings
from adcli.tasks.jobs import Job
from adcli.outputs.files import ensure_writable
from adcli.batch.plan import BatchOptions, JobResult, output_suffix, plan_jobs
from adcli.batch.sharding import Shard, current_shard, gather
from adcli.batch.status import DONE, FAILED, INTERRUPTED, UNFINISHED, WRITTEN

Note = Callable[[str], None]


def arguments() -> Any:
    """``adcli.batch.arguments`` (jobs from command-line arguments), imported when a command runs,
    not for ``--help`` or completion. It loads no model library."""
    from adcli.batch import arguments as module

    return module


def run_command(
    task: str,
    common: CommonOptions,
    build_jobs: Callable[[ResolvedSettings, Note], list[Job]],
    inputs_given: bool = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Jobs from the command line (``build_jobs``) or from ``--manifest``, run as one batch."""
    batch = common.batch
    shard = current_shard()
    overrides = common.overrides() if overrides is None else overrides
    resolved = load_settings(task, common.preset, overrides)
    if batch.manifest is not None and inputs_given:
        raise InputError("give the images either on the command line or in --manifest, not both")
    with RichReporter(common.quiet or not shard.is_main) as reporter:
        if batch.manifest is not None:
            from adcli.batch.manifest import manifest_jobs

            jobs = manifest_jobs(task, batch.manifest, common.preset, overrides, reporter.info)
        else:
            jobs = build_jobs(resolved, reporter.info)
    run_batch(jobs, common.output, common.quiet, batch, shard)


def run_batch(jobs: list[Job], output: Path, quiet: bool, batch: BatchOptions, shard: Shard | None = None) -> None:
    """Plan ``jobs``, make this process's share, and (main process) print the summary and write the report."""
    shard = shard or current_shard()
    plan = plan_jobs(jobs, output, batch.name, batch.format)
    if batch.dry_run:
        if shard.is_main:
            planned = print_plan(plan, batch, shard.world)
            if batch.report is not None:
                from adcli.views.report import write_run_report

                write_run_report(batch.report, plan, {result.index: result for result in planned})
        return
    ensure_writable(output.parent if output_suffix(output, batch.format)[0] else output)
    report = batch.report
    if report is not None and shard.world > 1 and not shard.gathers:  # each process reports its own share
        report = report.with_name(f"{report.stem}.rank{shard.rank}{report.suffix}")
    if report is not None and (shard.is_main or not shard.gathers):
        ensure_writable(report.parent)
    from adcli.batch.preflight import check_inputs
    from adcli.batch.runner import run_plan  # the model libraries load only when a run really starts
    from adcli.views.report import is_html, write_run_report
    from adcli.views.watchers import WatchOptions, make_watch

    rejected = check_inputs([planned for planned in plan if shard.owns(planned.index)])
    if rejected and (len(plan) == 1 or len(rejected) == len(plan)):
        raise next(iter(rejected.values()))  # nothing could run: the first problem, as one line, before any load

    done: dict[int, JobResult] = {}
    live = report is not None and is_html(report) and shard.world == 1

    def on_result(result: JobResult) -> None:
        done[result.index] = result
        if live:
            write_run_report(report, plan, done, running=True)

    watch = make_watch(WatchOptions(batch.animation, batch.animation_every, single=len(plan) == 1))
    began = time.perf_counter()
    label = f"[rank {shard.rank}] " if shard.world > 1 else ""
    with RichReporter(quiet or not shard.is_main, label=label) as reporter:
        with stop_after_current(quiet or not shard.is_main) as should_stop:
            results = run_plan(plan, batch, reporter, shard, should_stop, watch, on_result, rejected, spell=flag)
    _debug_tracebacks(results)
    gathered = gather(results, shard)
    everyone = results if gathered is None else [r for part in gathered for r in part]
    if gathered is not None and report is not None:
        write_run_report(report, plan, {result.index: result for result in everyone})
    if gathered is not None and batch.sheet is not None:
        _sheet(batch.sheet, everyone, quiet)
    if len(plan) == 1 and results and results[0].exception is not None:
        raise results[0].exception  # a single image: its own error and exit code, as one line
    if gathered is not None:
        _finish(everyone, time.perf_counter() - began, quiet, len(plan))
    _exit(results if gathered is None else everyone)


def _sheet(path: Path, results: list[JobResult], quiet: bool) -> None:
    """The contact sheet of the run's images (made or found by --resume)."""
    from adcli.views.sheet import make_sheet

    outputs = [result.output for result in results if result.output and result.status in WRITTEN]
    if not outputs:
        return
    sheet = make_sheet(outputs, path, overwrite=True)
    if not quiet:
        stderr.print(f"contact sheet: {sheet.path} ({sheet.rows} × {sheet.cols})")


def _debug_tracebacks(results: list[JobResult]) -> None:
    if os.environ.get("ADCLI_DEBUG"):
        for result in results:
            if result.exception is not None:
                traceback.print_exception(result.exception)


def _finish(results: list[JobResult], seconds: float, quiet: bool, total: int) -> None:
    failed = sum(result.status == FAILED for result in results)
    if not quiet and (total > 1 or any(result.status != DONE for result in results)):
        print_summary(results, seconds)
    elif failed:
        stderr.print(f"[bold red]{failed} of {len(results)} image(s) failed[/]")
    if any(result.error == INTERRUPTED for result in results):
        stderr.print("[yellow]interrupted[/]: finished images are kept; run the same command with --resume to continue")


def _exit(results: list[JobResult]) -> None:
    if any(result.error == INTERRUPTED for result in results):
        raise typer.Exit(130)
    if any(result.status in UNFINISHED for result in results):
        raise typer.Exit(1)
