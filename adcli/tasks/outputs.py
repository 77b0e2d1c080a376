"""Writing results: PNGs with their settings as metadata, atomically, never clobbering by accident."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from adcli.errors import OutputError, StorageFull

METADATA_KEY = "adcli"
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The settings an adcli PNG was made with, or None for other (or unreadable) files."""
    try:
        with Image.open(path) as image:
            text = image.text.get(METADATA_KEY) if hasattr(image, "text") else None
        data = json.loads(text) if text else None
    except (OSError, ValueError, SyntaxError):
        return None
    return data if isinstance(data, dict) else None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def free_path(folder: Path, stem: str, suffix: str = ".png") -> Path:
    """``folder/stem.png``, or ``stem-1.png``, ``stem-2.png``… if that exists already."""
    candidate = folder / f"{stem}{suffix}"
    number = 1
    while candidate.exists():
        candidate = folder / f"{stem}-{number}{suffix}"
        number += 1
    return candidate


def numbered_variants(path: Path) -> list[Path]:
    """``path`` and the ``stem-N`` files :func:`free_path` may have made beside it, in order."""
    pattern = re.compile(re.escape(path.stem) + r"-(\d+)" + re.escape(path.suffix))
    found = []
    if path.parent.is_dir():
        for entry in path.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
    return [path] * path.exists() + [entry for _, entry in sorted(found)]


def _error(path: Path, error: OSError) -> OutputError:
    message = f"cannot write {path}: {error.strerror or error}"
    if error.errno in _FULL:
        return StorageFull(f"{message}: free some space (finished images are kept)")
    return OutputError(message)


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` and check that a file can be made in it, before any work is done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OutputError(f"cannot write to output folder {folder}: {error.strerror or error}") from None


def _write_temporary(image: Image.Image, folder: Path, stem: str, metadata: dict[str, Any]) -> str:
    """The complete PNG in a hidden temporary file in ``folder`` (same filesystem: linking is atomic)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder {folder}: {error.strerror or error}") from None
    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, json.dumps(metadata, sort_keys=True))
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{stem}.", suffix=".partial", dir=folder)
    except OSError as error:
        raise _error(folder, error) from None
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            image.save(stream, format="PNG", pnginfo=info)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException as error:
        os.unlink(temporary)
        if isinstance(error, OSError):
            raise _error(folder / f"{stem}.png", error) from None
        raise
    return temporary


def _publish(temporary: str, path: Path) -> bool:
    """Give the finished temporary file the name ``path`` unless that exists; False if it does."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: a no-clobber rename is the best there is
        if path.exists():
            return False
        os.replace(temporary, path)
    return True


def write_png(image: Image.Image, path: Path, metadata: dict[str, Any], overwrite: bool = False) -> Path:
    """Write ``image`` to ``path`` with ``metadata`` as JSON text, atomically.

    The file appears complete or not at all; an existing file is replaced only with ``overwrite``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists: choose another -o, or pass --overwrite to replace it")
    temporary = _write_temporary(image, path.parent, path.stem, metadata)
    try:
        if overwrite:
            os.replace(temporary, path)
        elif not _publish(temporary, path):
            raise OutputError(f"{path} already exists: choose another -o, or pass --overwrite") from None
    except OSError as error:
        raise _error(path, error) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def write_png_free(image: Image.Image, path: Path, metadata: dict[str, Any]) -> Path:
    """Write to ``path``, or to ``stem-1.png``, ``stem-2.png``… when taken, even by a concurrent writer."""
    path = Path(path)
    temporary = _write_temporary(image, path.parent, path.stem, metadata)
    try:
        while True:
            candidate = free_path(path.parent, path.stem, path.suffix)
            if _publish(temporary, candidate):
                return candidate
    except OSError as error:
        raise _error(path, error) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
