"""Appearance transfer: structure image + appearance reference(s) → the structure with that look."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adcli.presets import ResolvedSettings
from adcli.tasks.jobs import Job, JobContext, Reporter
from adcli.tasks.transfer import transfer_job, transfer_jobs


def appearance_job(resolved: ResolvedSettings, inputs: dict[str, Any], context: JobContext) -> Job:
    return transfer_job(resolved, inputs, context, content_role="structure", reference_role="appearance")


def appearance_jobs(
    resolved: ResolvedSettings, structures: list[Path], appearances: list[Path], reporter: Reporter, pair: str = "product"
) -> list[Job]:
    return transfer_jobs(
        resolved, structures, appearances, reporter, content_role="structure", reference_role="appearance", pair=pair
    )
