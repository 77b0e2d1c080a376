"""The part every command shares: resolve settings, run the jobs with progress, report the end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from adcli.cli.console import RichReporter, stderr
from adcli.presets import ResolvedSettings, load_settings
from adcli.tasks.jobs import Job, Reporter, run_jobs


def run_command(
    task: str,
    preset: Path | None,
    overrides: dict[str, Any],
    build_jobs: Callable[[ResolvedSettings, Reporter], list[Job]],
    output: Path,
    overwrite: bool,
    quiet: bool,
) -> None:
    resolved = load_settings(task, preset, overrides)
    with RichReporter(quiet) as reporter:
        jobs = build_jobs(resolved, reporter)
        outcome = run_jobs(resolved, jobs, output, reporter, overwrite=overwrite)
    if outcome.failed:
        stderr.print(
            f"[bold red]{len(outcome.failed)} of {len(jobs)} image(s) failed[/]; "
            f"{len(outcome.written)} written"
        )
        raise typer.Exit(1)
