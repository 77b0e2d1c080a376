"""What a batch prints at the end (summary table, failures) and what --dry-run lists."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from adcli.cli.console import stderr, stdout
from adcli.outputs.files import free_path
from adcli.batch.plan import BatchOptions, JobResult, PlannedJob
from adcli.batch.resume import find_same
from adcli.batch.status import DONE, FAILED, NOT_RUN, PLANNED, SKIPPED

MAX_LISTED_FAILURES = 20


def print_summary(results: list[JobResult], wall_seconds: float) -> None:
    """done / skipped / failed / not run, and the time per image made (on stderr)."""
    counts = Counter(result.status for result in results)
    done = [result for result in results if result.status == DONE]
    per_image = f"{sum(r.seconds for r in done) / len(done):.2f} s" if done else "–"
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, title_justify="left")
    for column in ("jobs", DONE, SKIPPED, FAILED, "not run", "time per image", "wall time"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(results)), str(counts[DONE]), str(counts[SKIPPED]), str(counts[FAILED]),
        str(counts[NOT_RUN]), per_image, f"{wall_seconds:.1f} s",
    )
    stderr.print(table)
    failed = [result for result in results if result.status == FAILED]
    for result in failed[:MAX_LISTED_FAILURES]:
        stderr.print(f"  [red]failed[/] {escape(result.name)}: {escape(result.error or '')}", soft_wrap=True)
    if len(failed) > MAX_LISTED_FAILURES:
        stderr.print(f"  … and {len(failed) - MAX_LISTED_FAILURES} more (see --report)")


def _describe_inputs(inputs: dict) -> str:
    parts = []
    for key, value in inputs.items():
        text = "+".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def planned_status(planned: PlannedJob, options: BatchOptions) -> tuple[str, Path]:
    """What a real run would do with this job, and the path it would write (or keep)."""
    if options.resume:
        found = find_same(planned.path, planned.metadata)
        if found is not None:
            return "skip (done)", found
    if not planned.path.exists():
        return "new", planned.path
    if options.overwrite:
        return "replace", planned.path
    if planned.explicit:
        return "exists (needs --overwrite)", planned.path
    return "new name", free_path(planned.path.parent, planned.path.stem, planned.path.suffix)


def print_plan(plan: list[PlannedJob], options: BatchOptions, world: int) -> list[JobResult]:
    """One line per job on stdout, written at once (a 100,000-job plan prints in a moment);
    returns the plan as report lines (status planned or skipped)."""
    stderr.print(f"{len(plan)} job(s)" + (f", job i on process i % {world}" if world > 1 else "") + " (dry run: nothing is made)")
    lines, text = [], []
    width = len(str(len(plan) - 1))
    for planned in plan:
        status, path = planned_status(planned, options)
        rank = f" [rank {planned.index % world}]" if world > 1 else ""
        text.append(f"{planned.index:>{width}}  {path}  {status}  seed {planned.seed}{rank}  {_describe_inputs(planned.job.inputs)}\n")
        lines.append(JobResult(
            planned.index, planned.job.name, SKIPPED if status.startswith("skip") else PLANNED,
            output=str(path), seed=planned.seed, rank=planned.index % world,
        ))
    stdout.file.write("".join(text))  # plain lines, as they are: no markup to escape, no wrapping
    stdout.file.flush()
    return lines
