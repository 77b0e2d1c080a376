"""The names of a transfer's two inputs: ``content``/``style`` or ``structure``/``appearance``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskRoles:
    content: str
    reference: str
