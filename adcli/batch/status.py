"""What can become of a job, defined once: the statuses a run reports (summary, JSONL and HTML
reports, exit code) and the reason a stopped run gives. No model library is imported here, so
the CLI compares results without loading torch."""

from __future__ import annotations

from adcli.errors import setting
from adcli.presets import TASK_KEYS

PLANNED = "planned"  # listed by --dry-run, or not reached yet in a live report
DONE = "done"
SKIPPED = "skipped"  # --resume found it made with the same settings
FAILED = "failed"
NOT_RUN = "not-run"  # the run stopped before it
STATUSES = (PLANNED, DONE, SKIPPED, FAILED, NOT_RUN)
WRITTEN = (DONE, SKIPPED)  # the job's image exists
UNFINISHED = (FAILED, NOT_RUN)  # the run exits non-zero

INTERRUPTED = "interrupted"  # the error of jobs not run after Ctrl-C / SIGTERM (exit 130)


def out_of_memory_message(task: str, batch: int = 1) -> str:
    """One line saying what to lower, among the settings ``task`` has (and the batch, if one ran)."""
    hints = [f"a smaller {setting('batch_size')}"] if batch > 1 else []
    hints.append(f"{setting('dtype')} fp16")
    if "window_batch" in TASK_KEYS.get(task, ()):
        hints.append(f"a smaller {setting('window_batch')}")
    hints.append(f"a smaller {setting('size')}")
    return f"out of GPU memory: try {', '.join(hints[:-1])} or {hints[-1]}"
