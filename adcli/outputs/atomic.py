"""Replacing a file in one step: readers (viewers, browsers, watchers) never see half of it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from adcli.errors import OutputError


def replace_atomically(path: str | Path, write: Callable[[BinaryIO], None], what: str = "file") -> Path:
    """Call ``write(stream)`` on a hidden temporary file beside ``path``, then rename it over ``path``.

    The rename happens within one folder, so ``path`` is always either the old file or the whole new
    one. ``what`` names the file in the one-line error (``"contact sheet"``, ``"report"``).
    """
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)  # mkstemp makes 0600: give it the usual permissions
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        raise OutputError(f"cannot write the {what} {path}: {error.strerror or error}") from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
    return path
