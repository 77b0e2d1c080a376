"""Output names from templates such as ``"{content}_{style}_{seed}"``.

Fields are filled per job; every value is made safe for a file name, while ``/`` written in the
template itself makes subfolders of the output folder.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath
from string import Formatter
from typing import Any

from adcli.errors import InputError

# Fields every job has; each task adds its own (e.g. content, style, reference, prompt).
COMMON_FIELDS = ("name", "task", "index", "seed", "item_seed")
_UNSAFE = re.compile(r"[\x00-\x1f/\\:*?\"<>|]+")
MAX_FIELD = 80
IMAGE_NAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # the caller adds the run's own


def clean_value(value: Any) -> Any:
    """A field value made safe inside a file name: no separators or control characters, not too long."""
    if not isinstance(value, str):
        return value
    return _UNSAFE.sub("_", value).strip(" .")[:MAX_FIELD] or "_"


def slug(text: str, limit: int = 48, empty: str = "no-prompt") -> str:
    """A prompt as a short file-name word list: letters and digits of any script kept (``"чай у моря"``
    → ``"чай-у-моря"``), everything else a single ``-``; always a safe, non-empty name."""
    text = unicodedata.normalize("NFC", text).lower()
    # letters, marks (the vowel signs of Indic scripts) and numbers of every script
    kept = "".join(ch if unicodedata.category(ch)[0] in "LMN" else "-" for ch in text)
    words = re.sub(r"-+", "-", kept).strip("-")
    return words[:limit].strip("-") or empty


class NameTemplate:
    """A ``str.format`` template restricted to named fields, checked before any work is done."""

    def __init__(self, text: str, option: str = "--name"):
        self.text = text
        self.option = option
        try:
            parsed = list(Formatter().parse(text))
        except ValueError as error:
            raise InputError(f"{option} {text!r} is not a valid template ({error}): write fields in braces, e.g. {{content}}_{{style}}") from None
        self.fields = set()
        for _, field, _, _ in parsed:
            if field is None:
                continue
            if not field.isidentifier():
                raise InputError(f"{option} {text!r}: {{{field}}} is not a field name; write e.g. {{content}} or {{index:04d}}")
            self.fields.add(field)

    def check(self, available: set[str]) -> None:
        unknown = sorted(self.fields - available)
        if unknown:
            raise InputError(
                f"{self.option} {self.text!r} uses unknown field(s) {', '.join(unknown)}; "
                f"this command has: {', '.join(sorted(available))}"
            )

    def render(self, values: dict[str, Any]) -> str:
        """The relative output name (the image suffix is added by the caller) for one job's field values."""
        self.check(set(values))
        try:
            text = self.text.format(**{key: clean_value(value) for key, value in values.items()})
        except (ValueError, TypeError) as error:
            raise InputError(f"{self.option} {self.text!r} cannot be filled ({error}): check the format specs") from None
        return relative_name(text, self.option)


def relative_name(text: str, option: str = "--name") -> str:
    """Check that a rendered name stays inside the output folder; strip an image suffix (.png, .jpg…)."""
    name = text.strip()
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and f".{suffix.lower()}" in IMAGE_NAME_SUFFIXES:
        name = stem
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not name or name.startswith("/") or any(part in ("..", ".") for part in parts) or not parts:
        raise InputError(f"{option} gave {text!r}: a name must be a relative path inside the output folder")
    return "/".join(parts)
