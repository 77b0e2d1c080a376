"""Style transfer: content image + style reference(s) → the content in the style."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adcli.presets import ResolvedSettings
from adcli.tasks.jobs import Job, JobContext, Reporter
from adcli.tasks.transfer import transfer_job, transfer_jobs


def style_transfer_job(resolved: ResolvedSettings, inputs: dict[str, Any], context: JobContext) -> Job:
    return transfer_job(resolved, inputs, context, content_role="content", reference_role="style")


def style_transfer_jobs(
    resolved: ResolvedSettings, contents: list[Path], styles: list[Path], reporter: Reporter, pair: str = "product"
) -> list[Job]:
    return transfer_jobs(resolved, contents, styles, reporter, content_role="content", reference_role="style", pair=pair)
