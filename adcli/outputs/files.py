"""Writing results: PNG, JPEG or WebP with their settings as metadata, atomically, never clobbering by accident.

The settings are one JSON object: a PNG ``tEXt`` chunk named ``adcli``; in JPEG and WebP the EXIF
UserComment (ASCII JSON: non-ASCII text is escaped), which Pillow writes and reads back for both
and which image tools keep. :func:`read_metadata` reads either, so ``info``, ``rerun`` and
``--resume`` work for every format.
"""

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
from adcli.outputs.atomic import write_temporary

METADATA_KEY = "adcli"
# The suffixes -o may end with, and the Pillow format each writes.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
FORMAT_SUFFIXES = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp"}  # --format → folder outputs' suffix
DEFAULT_QUALITY = 95
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286
_ASCII_PREFIX = b"ASCII\0\0\0"  # EXIF UserComment: 8 bytes naming the character code, then the text
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def is_image_file_path(path: Path) -> bool:
    """Whether ``-o path`` names one image file (by its suffix) rather than a folder.

    An existing folder is a folder whatever its name; any other suffix is a one-line error.
    """
    suffix = path.suffix.lower()
    if not suffix or path.is_dir():
        return False
    if suffix not in OUTPUT_FORMATS:
        raise OutputError(
            f"-o {path}: adcli writes .png, .jpg/.jpeg or .webp files; give one of those, or a folder "
            f"(a name without a suffix, or an existing folder)"
        )
    return True


def format_suffix(name: str | None) -> str:
    """``--format`` (png, jpg, jpeg, webp; None: png) → the suffix of the files it makes."""
    key = (name or "png").lower().lstrip(".")
    if key not in FORMAT_SUFFIXES:
        raise OutputError(f"--format {name}: choose png, jpg or webp")
    return FORMAT_SUFFIXES[key]


def _exif_comment(text: str) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = _ASCII_PREFIX + text.encode("ascii")
    return exif.tobytes()


def _stored_text(image: Image.Image) -> str | None:
    if image.format == "PNG":
        return getattr(image, "text", {}).get(METADATA_KEY)
    comment = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    if isinstance(comment, str):
        comment = comment.encode("latin-1", "replace")
    if not isinstance(comment, bytes) or not comment.startswith(_ASCII_PREFIX):
        return None
    return comment[len(_ASCII_PREFIX) :].rstrip(b"\0").decode("ascii", "replace")


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The settings an adcli image (PNG, JPEG or WebP) was made with, or None for other (or unreadable) files."""
    try:
        with Image.open(path) as image:
            text = _stored_text(image)
        data = json.loads(text) if text else None
    except (OSError, ValueError, SyntaxError, KeyError):
        return None
    return data if isinstance(data, dict) else None


def free_path(folder: Path, stem: str, suffix: str = ".png") -> Path:
    """``folder/stem.png``, or ``stem-1.png``, ``stem-2.png``… if that exists already."""
    candidate = folder / f"{stem}{suffix}"
    number = 1
    while candidate.exists():
        candidate = folder / f"{stem}-{number}{suffix}"
        number += 1
    return candidate


_NUMBERED = re.compile(r"(.+)-(\d+)((?:\.[^.]*)?)")  # stem-N.suffix
_listings: dict[str, tuple[int, dict[tuple[str, str], list[tuple[int, Path]]]]] = {}


def _numbered_in(folder: Path) -> dict[tuple[str, str], list[tuple[int, Path]]]:
    """The folder's ``stem-N.suffix`` files by (stem, suffix), listed once while the folder is
    unchanged: --resume asks for every job of a batch, and a folder of 100,000 outputs must not
    be listed 100,000 times."""
    try:
        changed = folder.stat().st_mtime_ns
    except OSError:
        return {}
    key = str(folder)
    if key not in _listings or _listings[key][0] != changed:
        index: dict[tuple[str, str], list[tuple[int, Path]]] = {}
        for entry in folder.iterdir():
            match = _NUMBERED.fullmatch(entry.name)
            if match:
                index.setdefault((match.group(1), match.group(3)), []).append((int(match.group(2)), entry))
        if len(_listings) >= 1024:  # a run's folders (--name '{style}/…' makes one per style), bounded
            _listings.clear()
        _listings[key] = (changed, index)
    return _listings[key][1]


def numbered_variants(path: Path) -> list[Path]:
    """``path`` and the ``stem-N`` files :func:`free_path` may have made beside it, in order."""
    found = _numbered_in(path.parent).get((path.stem, path.suffix), [])
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


def _save_options(path: Path, metadata: dict[str, Any], quality: int) -> dict[str, Any]:
    """Pillow ``save`` keywords writing ``path``'s format with ``metadata`` inside."""
    text = json.dumps(metadata, sort_keys=True)  # ASCII: json escapes anything else
    kind = OUTPUT_FORMATS.get(path.suffix.lower(), "PNG")
    if kind == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text(METADATA_KEY, text)
        return {"format": "PNG", "pnginfo": info}
    if not 1 <= quality <= 100:
        raise OutputError(f"--quality {quality} must be from 1 to 100")
    exif = _exif_comment(text)
    if len(exif) > 65000:  # one JPEG marker segment holds at most 64 KiB
        raise OutputError(f"the settings of {path.name} are too long for {kind} metadata ({len(exif)} bytes): write .png")
    if kind == "JPEG":
        return {"format": "JPEG", "quality": quality, "exif": exif, "subsampling": 0 if quality >= 90 else 2}
    return {"format": "WEBP", "quality": quality, "exif": exif}


def _write_temporary(image: Image.Image, path: Path, metadata: dict[str, Any], quality: int) -> str:
    """The complete file, on disk, in a hidden temporary file beside ``path`` (same filesystem: linking is atomic)."""
    folder = path.parent
    options = _save_options(path, metadata, quality)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder {folder}: {error.strerror or error}") from None
    try:
        return write_temporary(path, lambda stream: image.save(stream, **options), sync=True)
    except OSError as error:
        raise _error(path, error) from None


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


def write_image(
    image: Image.Image, path: Path, metadata: dict[str, Any], overwrite: bool = False, quality: int = DEFAULT_QUALITY
) -> Path:
    """Write ``image`` to ``path`` in the format its suffix names, with ``metadata`` as JSON, atomically.

    The file appears complete or not at all; an existing file is replaced only with ``overwrite``.
    ``quality`` (1–100) applies to JPEG and WebP.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists: choose another -o, or pass --overwrite to replace it")
    temporary = _write_temporary(image, path, metadata, quality)
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


def write_image_free(image: Image.Image, path: Path, metadata: dict[str, Any], quality: int = DEFAULT_QUALITY) -> Path:
    """Write to ``path``, or to ``stem-1.png``, ``stem-2.png``… when taken, even by a concurrent writer."""
    path = Path(path)
    temporary = _write_temporary(image, path, metadata, quality)
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


# The names from when every output was a PNG (a .png path still writes a PNG).
write_png = write_image
write_png_free = write_image_free
