"""Style transfer: content image + style reference(s) → the content in the style."""

from __future__ import annotations

from pathlib import Path

from adcli.presets import ResolvedSettings
from adcli.tasks.jobs import Job, Reporter
from adcli.tasks.transfer import transfer_jobs


def style_transfer_jobs(
    resolved: ResolvedSettings, contents: list[Path], styles: list[Path], reporter: Reporter
) -> list[Job]:
    return transfer_jobs(resolved, contents, styles, reporter, content_role="content", reference_role="style")
