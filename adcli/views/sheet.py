"""Contact sheets: adcli outputs laid out as a grid by two of their settings or inputs.

Each image's metadata says how it was made; a sheet puts one field along the rows and another
along the columns (content × style for transfers, prompt × style for t2i, reference × seed for
textures), with the input images themselves as row and column headers where the field is an
image input. Pillow draws it with its bundled font, so no system font is needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from adcli.errors import InputError, OutputError
from adcli.outputs.atomic import replace_atomically
from adcli.outputs.files import METADATA_KEY, read_metadata
from adcli.batch.sources import IMAGE_SUFFIXES, expand_argument, is_image_name, natural_key

DEFAULT_AXES = {
    "style-transfer": ("content", "style"),
    "appearance": ("structure", "appearance"),
    "t2i": ("prompt", "style"),
    "texture": ("reference", "seed"),
    "expand": ("reference", "seed"),
}
FALLBACK_AXES = ("task", "image_seed")
# Fields stored beside the settings; ``image_seed`` is each image's own (derived) seed, while ``seed``
# is the setting: the base seed the user gave, the same for every image of one run.
TOP_LEVEL_FIELDS = {"task": "task", "image_seed": "seed", "model_arch": "model_arch", "preset": "preset"}
SHEET_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
MISSING = "—"
MAX_SIDE = 8192  # cells shrink (down to MIN_CELL) so that a big grid stays a picture a viewer opens
MIN_CELL = 48
PAD = 6
FONT_SIZE = 13
BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
FAINT = (120, 120, 120)


@dataclass(frozen=True)
class SheetImage:
    """One adcli output and the metadata stored in it."""

    path: Path
    metadata: dict[str, Any]


@dataclass
class Axis:
    """The values one field takes, in display order; ``kept`` of them fit on the sheet."""

    field: str
    keys: list[str]
    values: dict[str, Any]
    kept: int = 0

    @property
    def shown(self) -> list[str]:
        return self.keys[: self.kept]


@dataclass
class SheetLayout:
    """Which image goes in which cell, and what did not fit."""

    rows: Axis
    cols: Axis
    cells: dict[tuple[int, int], Path]
    left_out: int = 0
    shared: int = 0  # images whose cell already held another (same row and column values)
    notes: list[str] = field(default_factory=list)


@dataclass
class SheetResult:
    """What ``make_sheet`` wrote, and the lines the CLI should show."""

    path: Path
    rows: str
    cols: str
    shown: int
    skipped: list[Path]
    notes: list[str]
    geometry: Geometry


# ── fields ───────────────────────────────────────────────────────────────────────────────────────


def field_value(metadata: dict[str, Any], name: str) -> Any:
    """The value of ``name`` in an image's metadata: an input, a setting, or one of :data:`TOP_LEVEL_FIELDS`."""
    inputs = metadata.get("inputs") or {}
    if name in inputs:
        return inputs[name]
    settings = metadata.get("settings") or {}
    if name in settings:
        return settings[name]
    if name in TOP_LEVEL_FIELDS and TOP_LEVEL_FIELDS[name] in metadata:
        return metadata[TOP_LEVEL_FIELDS[name]]
    raise KeyError(name)


def known_fields(images: Sequence[SheetImage]) -> list[str]:
    names: set[str] = set()
    for image in images:
        names.update(image.metadata.get("inputs") or {})
        names.update(image.metadata.get("settings") or {})
        names.update(name for name, key in TOP_LEVEL_FIELDS.items() if key in image.metadata)
    return sorted(names)


def image_paths(value: Any) -> list[Path]:
    """The image files an input value names (one path or a reference set); [] for other values."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and Path(item).suffix.lower() in IMAGE_SUFFIXES for item in items):
        return []
    return [Path(item) for item in items]


def _shorten(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def value_label(value: Any) -> str:
    """A short label: file stems for image inputs (``a+b`` for a set), numbers as numbers."""
    if value is None:
        return MISSING
    paths = image_paths(value)
    if paths:
        return _shorten("+".join(path.stem for path in paths))
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, list):
        return _shorten(", ".join(map(str, value)))
    return _shorten(str(value))


def _value_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (2, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, value_label(value).lower())


def _distinct(images: Sequence[SheetImage], name: str) -> int:
    values = set()
    for image in images:
        try:
            values.add(_value_key(field_value(image.metadata, name)))
        except KeyError:
            pass
    return len(values)


def default_axes(images: Sequence[SheetImage]) -> tuple[str, str]:
    """The usual grid of the most common task among ``images``.

    Textures go by reference × seed (the base seed: runs with other ``--seed`` values); when
    every image has one base seed, the images of one run are told apart by ``image_index``.
    """
    tasks = [image.metadata.get("task") for image in images]
    task = max(set(tasks), key=tasks.count) if tasks else None
    rows, cols = DEFAULT_AXES.get(task, FALLBACK_AXES)
    if cols == "seed" and _distinct(images, "seed") <= 1 and _distinct(images, "image_index") > 1:
        cols = "image_index"
    return rows, cols


def _axis(images: Sequence[SheetImage], name: str) -> tuple[Axis, list[str]]:
    keys, values = [], {}
    for image in images:
        try:
            value = field_value(image.metadata, name)
        except KeyError:
            value = None
        key = _value_key(value)
        keys.append(key)
        values.setdefault(key, value)
    order = sorted(values, key=lambda key: _sort_key(values[key]))
    return Axis(name, order, values, kept=len(order)), keys


def _kept_counts(rows: int, cols: int, max_cells: int) -> tuple[int, int]:
    """Rows and columns to keep so that at most ``max_cells`` cells are drawn, trimming the longer side first."""
    if rows * cols <= max_cells:
        return rows, cols
    side = max(1, math.isqrt(max_cells))
    if cols <= side:
        return max(1, max_cells // cols), cols
    if rows <= side:
        return rows, max(1, max_cells // rows)
    return side, max(1, max_cells // side)


def plan_sheet(
    images: Sequence[SheetImage], rows: str | None = None, cols: str | None = None, max_cells: int = 400
) -> SheetLayout:
    """Place ``images`` on a grid of ``rows`` × ``cols`` values (default: the task's usual pair).

    A field that no image has is an error; an image without one of the fields goes to the ``—`` row
    or column. At most ``max_cells`` cells are kept (the first values in order); the notes say what
    was left out.
    """
    if max_cells < 1:
        raise InputError(f"--max-cells must be 1 or more, got {max_cells}")
    if not images:
        raise InputError("no adcli images to lay out")
    fields = known_fields(images)
    default_rows, default_cols = default_axes(images)
    for option, name in (("--rows", rows), ("--cols", cols)):
        if name is not None and name not in fields:
            raise InputError(f"{option} {name}: no image has that field; fields these images have: {', '.join(fields)}")
    rows = rows or (default_rows if default_rows != cols else default_cols)
    cols = cols or (default_cols if default_cols != rows else default_rows)
    if rows == cols:
        raise InputError(f"--rows and --cols both name {rows}: choose two different fields")
    row_axis, row_keys = _axis(images, rows)
    col_axis, col_keys = _axis(images, cols)
    row_axis.kept, col_axis.kept = _kept_counts(len(row_axis.keys), len(col_axis.keys), max_cells)
    row_index = {key: i for i, key in enumerate(row_axis.shown)}
    col_index = {key: i for i, key in enumerate(col_axis.shown)}
    layout = SheetLayout(row_axis, col_axis, {})
    for image, row_key, col_key in zip(images, row_keys, col_keys):
        place = (row_index.get(row_key), col_index.get(col_key))
        if None in place:
            layout.left_out += 1
        elif place in layout.cells:
            layout.shared += 1
        else:
            layout.cells[place] = image.path  # type: ignore[index]
    if layout.left_out:
        layout.notes.append(
            f"showing {row_axis.kept} of {len(row_axis.keys)} {rows} rows and {col_axis.kept} of "
            f"{len(col_axis.keys)} {cols} columns: {layout.left_out} image(s) left out "
            f"(raise --max-cells, or give fewer images)"
        )
    if layout.shared:
        layout.notes.append(
            f"{layout.shared} image(s) share a cell with another of the same {rows} and {cols}: the first is shown "
            f"(choose other --rows/--cols to tell them apart)"
        )
    return layout


# ── reading ──────────────────────────────────────────────────────────────────────────────────────


def _metadata(path: Path) -> dict[str, Any] | None:
    """Stored settings; PNG text before the pixels is read without decoding the image (fast for big batches)."""
    try:
        with Image.open(path) as image:
            text = image.info.get(METADATA_KEY)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(f"{path} is not an image that can be read (PNG, JPEG, WebP, …)") from None
    if isinstance(text, str):
        try:
            data = json.loads(text)
            return data if isinstance(data, dict) else None
        except ValueError:
            return None
    return read_metadata(path)


def _folder_images(folder: Path) -> list[Path]:
    found = [
        p for p in folder.rglob("*")
        if p.is_file() and is_image_name(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and not p.name.endswith(".preview.png")
    ]
    if not found:
        raise InputError(f"folder {folder} holds no images (.png, .jpg, .webp, …)")
    return sorted(found, key=natural_key)


def collect_images(paths: Sequence[str | Path], exclude: Path | None = None) -> tuple[list[SheetImage], list[Path]]:
    """Files, folders (searched through their subfolders) and globs → (adcli images, images without metadata)."""
    if not paths:
        raise InputError("no images given: name adcli outputs, folders or quoted globs")
    files: list[Path] = []
    for value in paths:
        if Path(value).is_dir():
            files += _folder_images(Path(value))
        else:
            files += expand_argument(value, "image", lambda _: None).paths
    seen: set[Path] = set()
    found, skipped = [], []
    for path in files:
        resolved = path.resolve()
        if resolved in seen or (exclude is not None and resolved == exclude.resolve()):
            continue
        seen.add(resolved)
        metadata = _metadata(path)
        if metadata is None or "task" not in metadata:
            skipped.append(path)
        else:
            found.append(SheetImage(path, metadata))
    if not found:
        raise InputError(f"none of the {len(skipped)} image(s) has adcli settings in it: give images adcli wrote")
    return found, skipped


# ── drawing ──────────────────────────────────────────────────────────────────────────────────────


def sheet_font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font (needs no system font); its fixed-size bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # old Pillow or no FreeType
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int, lines: int) -> list[str]:
    """``text`` wrapped into at most ``lines`` lines of ``width`` pixels, the last cut with "…"."""
    words, out, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width or not line:
            line = candidate
        else:
            out.append(line)
            line = word
    out.append(line)
    if len(out) > lines:
        out = out[:lines]
        out[-1] += "…"
    for i, item in enumerate(out):
        while draw.textlength(item, font=font) > width and len(item) > 1:
            item = item[:-2] + "…"
        out[i] = item
    return out


def _open_picture(path: Path, box: int) -> Image.Image | None:
    """``path`` as an RGB picture filling ``box``² (EXIF rotation applied; small outputs are scaled up
    with hard edges, so each cell shows its pixels); None when unreadable."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (box, box))
            picture = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError):
        return None
    if max(picture.size) >= box:
        picture.thumbnail((box, box), Image.Resampling.LANCZOS)
        return picture
    return ImageOps.contain(picture, (box, box), Image.Resampling.NEAREST)


def _header_picture(value: Any, box: int) -> Image.Image | None:
    """The first input image named by ``value`` (paths as recorded: relative to where the run was started)."""
    paths = image_paths(value)
    return _open_picture(paths[0], box) if paths and paths[0].is_file() else None


@dataclass(frozen=True)
class Geometry:
    """Where things go on the sheet: the top-left corner of cell (row, col) is :meth:`cell_origin`."""

    cell: int
    header_width: int
    top: int  # y of the first row of cells
    line: int  # text line height

    def cell_origin(self, row: int, col: int) -> tuple[int, int]:
        return PAD + self.header_width + PAD + col * (self.cell + PAD), self.top + row * (self.cell + PAD)


def geometry(layout: SheetLayout, cell: int, font: Any, title_lines: int) -> Geometry:
    rows, cols = layout.rows.kept, layout.cols.kept
    cell = max(MIN_CELL, min(cell, MAX_SIDE // max(rows + 1, cols + 1)))
    line = int(font.getbbox("Hg")[3]) + 3
    col_pictures = any(image_paths(layout.cols.values[key]) for key in layout.cols.shown)
    col_header = (cell + PAD if col_pictures else 0) + 2 * line
    top = PAD + title_lines * line + PAD + col_header + PAD
    return Geometry(cell, cell, top, line)


def draw_sheet(layout: SheetLayout, cell: int = 192) -> tuple[Image.Image, Geometry]:
    """The grid as one picture (a title, column headers, row headers, a thumbnail per cell) and where its cells are."""
    font = sheet_font()
    title = [f"rows: {layout.rows.field} · columns: {layout.cols.field} · {len(layout.cells)} image(s)", *layout.notes]
    geo = geometry(layout, cell, font, len(title))
    width = PAD + geo.header_width + PAD + layout.cols.kept * (geo.cell + PAD)
    height = geo.top + layout.rows.kept * (geo.cell + PAD)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max(width, PAD + max(int(scratch.textlength(line, font=font)) for line in title) + PAD)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, text in enumerate(title):
        draw.text((PAD, PAD + i * geo.line), text, fill=INK if i == 0 else FAINT, font=font)
    # column headers: the input picture (if any) above its label
    for col, key in enumerate(layout.cols.shown):
        value = layout.cols.values[key]
        x, _ = geo.cell_origin(0, col)
        y = PAD + len(title) * geo.line + PAD
        picture = _header_picture(value, geo.cell)
        if picture is not None:
            sheet.paste(picture, (x + (geo.cell - picture.width) // 2, y + (geo.cell - picture.height)))
        label_y = geo.top - PAD - 2 * geo.line
        for i, text in enumerate(_fit_text(draw, value_label(value), font, geo.cell, 2)):
            indent = max(0, (geo.cell - int(draw.textlength(text, font=font))) // 2)
            draw.text((x + indent, label_y + i * geo.line), text, fill=INK, font=font)
    # row headers: the input picture (if any) with its label over it, or the label alone
    for row, key in enumerate(layout.rows.shown):
        value = layout.rows.values[key]
        _, y = geo.cell_origin(row, 0)
        picture = _header_picture(value, geo.cell - 2 * geo.line)
        lines = _fit_text(draw, value_label(value), font, geo.header_width, 2 if picture is not None else 6)
        for i, text in enumerate(lines):
            draw.text((PAD, y + i * geo.line), text, fill=INK, font=font)
        if picture is not None:
            sheet.paste(picture, (PAD, y + 2 * geo.line))
    for (row, col), path in layout.cells.items():
        x, y = geo.cell_origin(row, col)
        picture = _open_picture(path, geo.cell)
        if picture is None:
            draw.rectangle((x, y, x + geo.cell - 1, y + geo.cell - 1), outline=FAINT)
            draw.text((x + PAD, y + PAD), "unreadable", fill=FAINT, font=font)
            continue
        sheet.paste(picture, (x + (geo.cell - picture.width) // 2, y + (geo.cell - picture.height) // 2))
    return sheet, geo


def sheet_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SHEET_FORMATS:
        raise InputError(f"-o {path}: a contact sheet is a .png, .jpg or .webp file")
    return SHEET_FORMATS[suffix]


def make_sheet(
    paths: Sequence[str | Path],
    output: str | Path,
    rows: str | None = None,
    cols: str | None = None,
    max_cells: int = 400,
    cell: int = 192,
    overwrite: bool = False,
) -> SheetResult:
    """Read the adcli images named by ``paths``, lay them out, and write the sheet to ``output`` atomically."""
    output = Path(output)
    image_format = sheet_format(output)
    if output.exists() and not overwrite:
        raise OutputError(f"{output} already exists: choose another -o, or pass --overwrite to replace it")
    images, skipped = collect_images(paths, exclude=output)
    layout = plan_sheet(images, rows, cols, max_cells)
    sheet, geo = draw_sheet(layout, cell)
    options = {"quality": 90} if image_format in ("JPEG", "WEBP") else {}
    replace_atomically(output, lambda stream: sheet.save(stream, image_format, **options), "contact sheet")
    return SheetResult(output, layout.rows.field, layout.cols.field, len(layout.cells), skipped, layout.notes, geo)
