"""The report of a run: an HTML page (watchable while a batch runs) or JSON lines, by suffix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adcli.batch.plan import JobResult, PlannedJob
from adcli.batch.status import PLANNED
from adcli.outputs.atomic import replace_atomically
from adcli.presets import SETTINGS
from adcli.views.html_report import write_html_report

HTML_SUFFIXES = (".html", ".htm")
REFRESH_SECONDS = 5


def is_html(path: Path) -> bool:
    return path.suffix.lower() in HTML_SUFFIXES


def _key_settings(planned: PlannedJob) -> dict[str, Any]:
    """What a reader compares between jobs: every computing setting (not the model's loading ones)."""
    values = planned.resolved.settings.as_dict()
    shown = {k: v for k, v in values.items() if k in SETTINGS and not SETTINGS[k].loading and not SETTINGS[k].run_option}
    shown["base seed"] = shown.pop("seed")  # beside the job's own (derived) seed
    return shown


def html_rows(plan: list[PlannedJob], results: dict[int, JobResult]) -> list[dict[str, Any]]:
    """One row per planned job: its result so far (``planned`` until made), inputs and settings."""
    rows = []
    for planned in plan:
        result = results.get(planned.index) or JobResult(planned.index, planned.job.name, PLANNED, seed=planned.seed)
        rows.append({**result.as_json(), "inputs": planned.job.inputs, "settings": _key_settings(planned)})
    return rows


def write_report(path: Path, results: list[JobResult]) -> Path:
    """One JSON line per job (index, name, status, output, seconds, error, seed, rank, losses),
    written atomically with the usual file permissions, as the images are."""
    lines = "".join(json.dumps(result.as_json(), sort_keys=True) + "\n" for result in sorted(results, key=lambda r: r.index))
    return replace_atomically(path, lambda stream: stream.write(lines.encode("utf-8")), "report")


def write_run_report(path: Path, plan: list[PlannedJob], results: dict[int, JobResult], running: bool = False) -> None:
    """Write the report; ``running``: a page that reloads itself until the last write."""
    if is_html(path):
        title = f"adcli {plan[0].resolved.task}" if plan else "adcli run"
        write_html_report(path, html_rows(plan, results), title, REFRESH_SECONDS if running else None)
    else:
        write_report(path, list(results.values()))
