"""--resume: find an existing output made with the same fingerprint as a planned job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adcli.outputs.files import numbered_variants, read_metadata
from adcli.outputs.metadata import fingerprint


def find_same(path: Path, metadata: dict[str, Any]) -> Path | None:
    """An existing output at ``path`` (or a ``-N`` variant of it) made with the same fingerprint."""
    wanted = fingerprint(metadata)
    for candidate in numbered_variants(path):
        stored = read_metadata(candidate)
        if stored is not None and fingerprint(stored) == wanted:
            return candidate
    return None
