"""Writing a file in one step: readers (viewers, browsers, watchers) never see half of it.

Every file adcli writes — images, reports, previews, animations, contact sheets — is first
written whole to a hidden temporary file beside its path (:func:`write_temporary`, with the
permissions a new file usually gets), then renamed or linked into place within one folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from adcli.errors import OutputError


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_temporary(path: Path, write: Callable[[BinaryIO], None], sync: bool = False) -> str:
    """``write(stream)`` into a hidden ``.NAME.….partial`` file beside ``path``, given the usual
    permissions (``mkstemp`` makes 0600); ``sync``: on disk before it is named. Raises OSError and
    leaves nothing behind when it fails."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~current_umask())
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            if sync:
                stream.flush()
                os.fsync(stream.fileno())
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def replace_atomically(path: str | Path, write: Callable[[BinaryIO], None], what: str = "file") -> Path:
    """Call ``write(stream)`` on a hidden temporary file beside ``path``, then rename it over ``path``.

    The rename happens within one folder, so ``path`` is always either the old file or the whole new
    one. ``what`` names the file in the one-line error (``"contact sheet"``, ``"report"``).
    """
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = write_temporary(path, write)
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        raise OutputError(f"cannot write the {what} {path}: {error.strerror or error}") from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
    return path
