"""Writing results: PNGs with their settings as metadata, atomically, never clobbering by accident."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from adcli.errors import OutputError

METADATA_KEY = "adcli"


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The settings an adcli PNG was made with, or None for other files."""
    try:
        with Image.open(path) as image:
            text = image.text.get(METADATA_KEY) if hasattr(image, "text") else None
    except (OSError, ValueError):
        return None
    return json.loads(text) if text else None


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


def write_png(image: Image.Image, path: Path, metadata: dict[str, Any], overwrite: bool = False) -> Path:
    """Write ``image`` to ``path`` with ``metadata`` as JSON text, atomically.

    The file appears complete or not at all; an existing file is replaced only with ``overwrite``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder {path.parent}: {error.strerror or error}") from None
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists: choose another -o, or pass --overwrite to replace it")
    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, json.dumps(metadata, sort_keys=True))
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial", dir=path.parent)
    except OSError as error:
        raise OutputError(f"cannot write to {path.parent}: {error.strerror or error}") from None
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            image.save(stream, format="PNG", pnginfo=info)
            stream.flush()
            os.fsync(stream.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise OutputError(f"{path} already exists: choose another -o, or pass --overwrite") from None
            except OSError:
                if path.exists():
                    raise OutputError(f"{path} already exists: choose another -o, or pass --overwrite") from None
                os.replace(temporary, path)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path
