"""Image arguments → lists of images, and how inputs pair up into jobs.

Every image argument takes files, folders (the images inside, in natural order) and globs
(quoted, so that adcli rather than the shell expands them). For reference options such as
``--style`` a single file joins the reference set of every job (several are distilled together),
while a folder or glob makes one job per image it holds.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adcli.errors import InputError
from adcli.tasks.jobs import Note

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
PAIR_MODES = ("product", "zip")


def once(note: Note) -> Note:
    """``note`` that says each distinct remark once (e.g. for every image of ``--num-images``)."""
    said: set[str] = set()

    def say(message: str) -> None:
        if message not in said:
            said.add(message)
            note(message)

    return say


def natural_key(path: Path) -> list:
    """``img2`` before ``img10``: numbers in names compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def is_pattern(text: str) -> bool:
    return any(char in text for char in "*?[")


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class Expanded:
    """The images one argument names; ``several`` for a folder or glob (one job per image)."""

    paths: list[Path]
    several: bool


def _images_of(found: Iterable[Path], where: str, what: str, note: Note) -> list[Path]:
    files = sorted((p for p in found if p.is_file() and not p.name.startswith(".")), key=natural_key)
    images = [p for p in files if is_image_name(p)]
    others = [p.name for p in files if not is_image_name(p)]
    if not images:
        held = f"; it has {len(others)} other file(s) such as {others[0]}" if others else ""
        raise InputError(f"{what} {where} holds no images (.png, .jpg, .webp, …){held}")
    if others:
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        note(f"skipped {len(others)} non-image file(s) in {where}: {shown}")
    return images


def expand_argument(value: str | Path, what: str, note: Note) -> Expanded:
    """One file, folder or glob → its images; a clear error when it names nothing usable."""
    text = os.path.expanduser(str(value))
    path = Path(text)
    if path.is_dir():
        return Expanded(_images_of(path.iterdir(), f"folder {path}", what, note), True)
    if path.exists():
        return Expanded([path], False)
    if is_pattern(text):
        matches = [Path(p) for p in glob.glob(text, recursive=True)]
        if not matches:
            raise InputError(f"{what} pattern {text!r} matches no file: check it (and quote it so the shell leaves it to adcli)")
        return Expanded(_images_of(matches, f"pattern {text!r}", what, note), True)
    raise InputError(f"{what} {path} does not exist: check the path")


def expand_images(values: Sequence[str | Path] | None, what: str, note: Note) -> list[Path]:
    """Every image named by ``values`` (files, folders, globs), each to be used on its own."""
    if not values:
        raise InputError(f"no {what} given: name files, folders or quoted globs (or use --manifest)")
    return [path for value in values for path in expand_argument(value, what, note).paths]


def reference_sets(values: Sequence[str | Path] | None, what: str, note: Note) -> list[list[Path]]:
    """Reference sets, one per job: single files join every set; each folder/glob image starts its own.

    ``--style a.png --style b.png`` → [[a, b]] (one job distilling both);
    ``--style styles/`` → [[s1], [s2], …]; ``--style styles/ --style paper.png`` → [[s1, paper], …].
    """
    if not values:
        raise InputError(f"no {what} given: name files, folders or quoted globs (or use --manifest)")
    shared: list[Path] = []
    each: list[Path] = []
    for value in values:
        expanded = expand_argument(value, what, note)
        (each if expanded.several else shared).extend(expanded.paths)
    if not each:
        return [shared]
    return [[path, *shared] for path in each]


def pair_up(contents: list[Any], references: list[Any], mode: str, content_what: str, reference_what: str) -> list[tuple[Any, Any]]:
    """``product``: every content with every reference set; ``zip``: the i-th with the i-th."""
    if mode == "product":
        return [(content, reference) for content in contents for reference in references]
    if mode == "zip":
        if len(contents) != len(references):
            raise InputError(
                f"--pair zip needs as many {reference_what} jobs as {content_what}s: got {len(contents)} "
                f"{content_what}(s) and {len(references)} {reference_what} job(s) (a folder or glob gives one job per image)"
            )
        return list(zip(contents, references))
    raise InputError(f"--pair {mode!r} is not one of {', '.join(PAIR_MODES)}")


def read_prompts(path: Path) -> list[tuple[int, str]]:
    """(line number, prompt) for each non-empty line of a UTF-8 text file."""
    if not path.is_file():
        raise InputError(f"prompts file {path} does not exist or is not a file: check --prompts")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"prompts file {path} cannot be read as UTF-8 text ({error})") from None
    prompts = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not prompts:
        raise InputError(f"prompts file {path} has no prompts: write one prompt per line")
    return prompts
