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
from adcli.cli.console import RichReporter, stderr
from adcli.cli.interrupt import stop_after_current
from adcli.cli.summary import print_plan, print_summary
from adcli.errors import InputError
from adcli.presets import ResolvedSettings, load_settings
from adcli.tasks.batch import INTERRUPTED, run_plan
from adcli.tasks.jobs import Job, Reporter
from adcli.tasks.manifest import manifest_jobs
from adcli.tasks.outputs import ensure_writable
from adcli.tasks.plan import BatchOptions, JobResult, output_suffix, plan_jobs, write_report
from adcli.tasks.sharding import Shard, current_shard, gather


def run_command(
    task: str,
    common: CommonOptions,
    overrides: dict[str, Any],
    build_jobs: Callable[[ResolvedSettings, Reporter], list[Job]],
    inputs_given: bool = False,
) -> None:
    """Jobs from the command line (``build_jobs``) or from ``--manifest``, run as one batch."""
    batch = common.batch
    shard = current_shard()
    resolved = load_settings(task, common.preset, overrides)
    if batch.manifest is not None and inputs_given:
        raise InputError("give the images either on the command line or in --manifest, not both")
    with RichReporter(common.quiet or not shard.is_main) as reporter:
        if batch.manifest is not None:
            jobs = manifest_jobs(task, batch.manifest, common.preset, overrides, reporter)
        else:
            jobs = build_jobs(resolved, reporter)
    run_batch(resolved, jobs, common.output, common.quiet, batch, shard)


def run_batch(
    resolved: ResolvedSettings, jobs: list[Job], output: Path, quiet: bool, batch: BatchOptions, shard: Shard | None = None
) -> None:
    """Plan ``jobs``, make this process's share, and (main process) print the summary and write the report."""
    shard = shard or current_shard()
    plan = plan_jobs(jobs, resolved, output, batch.name, batch.format)
    if batch.dry_run:
        if shard.is_main:
            planned = print_plan(plan, batch, shard.world)
            if batch.report is not None:
                write_report(batch.report, planned)
        return
    ensure_writable(output.parent if output_suffix(output, batch.format)[0] else output)
    report = batch.report
    if report is not None and shard.world > 1 and not shard.gathers:  # each process reports its own share
        report = report.with_name(f"{report.stem}.rank{shard.rank}{report.suffix}")
    if report is not None and (shard.is_main or not shard.gathers):
        ensure_writable(report.parent)
    began = time.perf_counter()
    label = f"[rank {shard.rank}] " if shard.world > 1 else ""
    with RichReporter(quiet or not shard.is_main, label=label) as reporter:
        with stop_after_current(quiet or not shard.is_main) as should_stop:
            results = run_plan(plan, batch, reporter, shard, should_stop)
    _debug_tracebacks(results)
    gathered = gather(results, shard)
    everyone = results if gathered is None else [r for part in gathered for r in part]
    if gathered is not None and report is not None:
        write_report(report, everyone)
    if len(plan) == 1 and results and results[0].exception is not None:
        raise results[0].exception  # a single image: its own error and exit code, as one line
    if gathered is not None:
        _finish(everyone, time.perf_counter() - began, quiet, len(plan))
    _exit(results if gathered is None else everyone)


def _debug_tracebacks(results: list[JobResult]) -> None:
    if os.environ.get("ADCLI_DEBUG"):
        for result in results:
            if result.exception is not None:
                traceback.print_exception(result.exception)


def _finish(results: list[JobResult], seconds: float, quiet: bool, total: int) -> None:
    failed = sum(result.status == "failed" for result in results)
    if not quiet and (total > 1 or any(result.status != "done" for result in results)):
        print_summary(results, seconds)
    elif failed:
        stderr.print(f"[bold red]{failed} of {len(results)} image(s) failed[/]")
    if any(result.error == INTERRUPTED for result in results):
        stderr.print("[yellow]interrupted[/]: finished images are kept; run the same command with --resume to continue")


def _exit(results: list[JobResult]) -> None:
    if any(result.error == INTERRUPTED for result in results):
        raise typer.Exit(130)
    if any(result.status in ("failed", "not-run") for result in results):
        raise typer.Exit(1)
