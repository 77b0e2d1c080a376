"""Appearance transfer: structure image + appearance reference(s) → the structure with that look."""

from __future__ import annotations

from pathlib import Path

from adcli.presets import ResolvedSettings
from adcli.tasks.jobs import Job, Reporter
from adcli.tasks.transfer import transfer_jobs


def appearance_jobs(
    resolved: ResolvedSettings, structures: list[Path], appearances: list[Path], reporter: Reporter
) -> list[Job]:
    return transfer_jobs(
        resolved, structures, appearances, reporter, content_role="structure", reference_role="appearance"
    )
