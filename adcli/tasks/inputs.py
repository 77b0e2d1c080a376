"""What each command takes, declared once: one frozen inputs class per command whose fields are
its roles (``content``, ``style``, ``prompt``…), each of a kind — ``image`` (one picture),
``images`` (a reference set), ``text`` or ``int``.

Everything else reads the roles from these classes: the manifest's columns, the inputs stored
in an image for ``adcli rerun``, the job builders, the public API. The task functions read an
item by role name (``item["content"]``), so an inputs object is also a read-only mapping.

No model library is imported here: planning a run and ``--dry-run`` stay fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, TypeVar, Union

import numpy as np
from PIL import Image

from adcli.errors import InputError

# An image as the API takes it: a path, a PIL image, or an (H, W, 3) uint8 array.
ImageSource = Union[str, Path, Image.Image, np.ndarray]
Kind = Literal["image", "images", "text", "int"]
_ROLE = "adcli_role"


def image(*, required: bool = True) -> Any:
    """A role holding one picture (optional roles default to None)."""
    return _role("image", required, None)


def images() -> Any:
    """A role holding a reference set: one or more pictures, distilled together."""
    return _role("images", True, None)


def text() -> Any:
    return _role("text", True, None)


def number(*, default: int = 0) -> Any:
    """A whole-number role (e.g. ``image_index``), optional with ``default``."""
    return _role("int", False, default)


def _role(kind: Kind, required: bool, default: Any) -> Any:
    if required:
        return field(metadata={_ROLE: kind})
    return field(default=default, metadata={_ROLE: kind})


@dataclass(frozen=True)
class Role:
    name: str
    kind: Kind
    required: bool


Self = TypeVar("Self", bound="Inputs")


class Inputs(Mapping[str, Any]):
    """The base of the per-command inputs classes (frozen dataclasses of roles)."""

    @classmethod
    def roles(cls) -> tuple[Role, ...]:
        return tuple(
            Role(f.name, f.metadata[_ROLE], f.default is dataclasses.MISSING)
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        )

    @classmethod
    def role_of_kind(cls, kind: Kind) -> str:
        """The name of the command's one role of ``kind`` (a transfer's content image, its reference set)."""
        (name,) = [role.name for role in cls.roles() if role.kind == kind]
        return name

    @classmethod
    def from_stored(cls: type[Self], values: Mapping[str, Any], base: Path | None, where: str) -> Self:
        """Inputs from text: a manifest row (paths relative to ``base``) or the inputs an image
        recorded. Keys that are not roles are ignored (a masked texture records its labels too)."""
        given = {
            role.name: convert_input(role, values[role.name], base, where)
            for role in cls.roles()
            if values.get(role.name) is not None  # an optional input not given (t2i's layout: null)
        }
        missing = [role.name for role in cls.roles() if role.required and role.name not in given]
        if missing:
            raise InputError(f"{where}: no {' or '.join(missing)}")
        return cls(**given)

    @classmethod
    def of(cls: type[Self], value: Inputs | Mapping[str, Any]) -> Self:
        """``value`` as this class (a mapping of role → value, e.g. from the API)."""
        if isinstance(value, cls):
            return value
        names = {role.name for role in cls.roles()}
        return cls(**{key: item for key, item in value.items() if key in names and item is not None})

    # -- a read-only mapping, for the task functions ------------------------------------------
    def __getitem__(self, name: str) -> Any:
        if name not in self._names():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]


@dataclass(frozen=True)
class StyleTransferInputs(Inputs):
    content: ImageSource = image()
    style: Sequence[ImageSource] = images()


@dataclass(frozen=True)
class AppearanceInputs(Inputs):
    structure: ImageSource = image()
    appearance: Sequence[ImageSource] = images()


@dataclass(frozen=True)
class TextureInputs(Inputs):
    reference: Sequence[ImageSource] = images()
    image_index: int = number()
    source_mask: Optional[ImageSource] = image(required=False)
    target_mask: Optional[ImageSource] = image(required=False)

    @property
    def masked(self) -> bool:
        return self.source_mask is not None or self.target_mask is not None


@dataclass(frozen=True)
class T2IInputs(Inputs):
    prompt: str = text()
    style: Sequence[ImageSource] = images()
    image_index: int = number()
    layout: Optional[ImageSource] = image(required=False)
    control: Optional[ImageSource] = image(required=False)


@dataclass(frozen=True)
class ExpandInputs(Inputs):
    reference: Sequence[ImageSource] = images()
    image_index: int = number()


# -- one input as text and back ---------------------------------------------------------------

def _path(value: Any, base: Path | None, where: str, role: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {role} must be an image path, got {value!r}")
    path = Path(os.path.expanduser(value.strip()))
    return path if base is None or path.is_absolute() else base / path


def convert_input(role: Role, value: Any, base: Path | None, where: str) -> Any:
    """A stored or manifest value → what the job builder takes; paths relative to ``base``."""
    if role.kind == "image":
        return _path(value, base, where, role.name)
    if role.kind == "images":
        items = value.split(";") if isinstance(value, str) else value
        if not isinstance(items, list) or not [i for i in items if str(i).strip()]:
            raise InputError(f"{where}: {role.name} must be one or more image paths (separate several with ';')")
        return [_path(item, base, where, role.name) for item in items if str(item).strip()]
    if role.kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InputError(f"{where}: {role.name} must be a whole number, got {value!r}") from None
    return str(value)


def source_key(source: ImageSource) -> str:
    """A cache key naming the picture: its path, or a digest of the pixels held in memory."""
    if isinstance(source, (str, Path)):
        return f"path:{Path(source)}"
    if isinstance(source, Image.Image):
        return f"pil:{source.mode}:{source.size}:{hashlib.sha1(source.tobytes()).hexdigest()}"
    array = np.ascontiguousarray(source)
    return f"array:{array.shape}:{array.dtype}:{hashlib.sha1(array.tobytes()).hexdigest()}"


def source_label(source: ImageSource, fallback: str = "image") -> str:
    """A short name for file names and metadata: the file's stem, or ``fallback`` for pixels."""
    return Path(source).stem if isinstance(source, (str, Path)) else fallback


def source_record(source: ImageSource) -> str:
    """What metadata records for an input: the path, or ``<in-memory image WxH>``."""
    if isinstance(source, (str, Path)):
        return str(source)
    width, height = (source.size if isinstance(source, Image.Image) else (source.shape[1], source.shape[0]))
    return f"<in-memory image {width}x{height}>"


def source_files(sources: Sequence[ImageSource]) -> tuple[Path, ...]:
    """The sources that are files (their digests go into metadata for ``--resume``)."""
    return tuple(Path(s) for s in sources if isinstance(s, (str, Path)))


def require_files(paths: Sequence[ImageSource], what: str) -> list[ImageSource]:
    """Every path must be an existing file (pixels in memory pass); the error names the first that is not."""
    if not paths:
        raise InputError(f"no {what} given")
    for path in paths:
        if not isinstance(path, (str, Path)):
            continue
        path = Path(path)
        if not path.exists():
            raise InputError(f"{what} {path} does not exist: check the path")
        if path.is_dir():
            raise InputError(f"{what} {path} is a folder: give image files")
    return list(paths)


def as_list(value: Any) -> list[Any]:
    """One reference or several: a single path/image/array becomes a one-item list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]
