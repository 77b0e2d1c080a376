"""The HTML report of a batch: one self-contained page, a card per job, rewritten after each job.

Each row is a JSONL report line (index, name, status, output, seconds, error, seed, rank and, on a GPU,
``peak_gpu_memory_gb``) plus
``inputs``, ``settings`` (the key ones) and ``losses`` ([step, loss] pairs, sampled). The page has
inline CSS, thumbnails as inline base64 JPEG linked to the full images by relative path, and loss
curves as inline SVG, so it can be copied or mailed with the images beside it. No template engine:
the markup is small enough to write out.
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageOps

from adcli.outputs.atomic import replace_atomically
from adcli.outputs.metadata import peak_memory_text

THUMBNAIL = 160
CURVE_WIDTH, CURVE_HEIGHT = 240, 64
_thumbnails: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) → data URI: a rewrite reads only new images

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em}
.summary{color:#555;margin-bottom:1em}
.jobs{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:12px}
.job{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px;display:flex;gap:10px}
.job.failed{border-color:#d33}
.thumb{width:160px;min-width:160px;height:160px;display:flex;align-items:center;justify-content:center;background:#eee}
.thumb img{width:160px;height:160px;object-fit:contain;image-rendering:pixelated}
.about{min-width:0;flex:1}
.name{font-weight:600;word-break:break-all}
.status{display:inline-block;padding:0 6px;border-radius:3px;font-size:.85em;color:#fff;background:#888}
.status.done{background:#2a7}.status.skipped{background:#888}.status.failed{background:#d33}
.error{color:#b00;white-space:pre-wrap;word-break:break-word}
dl{display:grid;grid-template-columns:auto 1fr;gap:0 8px;margin:.4em 0;font-size:.9em}
dt{color:#666}dd{margin:0;overflow-wrap:anywhere}
svg{display:block;margin-top:4px;max-width:100%;height:auto}
.muted{color:#888;font-size:.85em}
"""


def _link(target: str | Path, page: Path) -> str:
    """``target`` as a URL relative to the page's folder (paths in the report are relative to where adcli ran)."""
    relative = os.path.relpath(Path(target).resolve(), page.parent.resolve())
    return quote(Path(relative).as_posix())


def _thumbnail(path: Path) -> str | None:
    """A small JPEG of ``path`` as a data URI; None when it cannot be read (yet)."""
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _thumbnails:
            with Image.open(path) as image:
                image.draft("RGB", (THUMBNAIL, THUMBNAIL))
                picture = ImageOps.exif_transpose(image).convert("RGB")
            picture.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            picture.save(buffer, "JPEG", quality=80)
            _thumbnails[key] = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        return _thumbnails[key]
    except (OSError, SyntaxError, ValueError):
        return None


def loss_curve(losses: Sequence[Sequence[float]] | None) -> str:
    """An inline SVG polyline of [step, loss] pairs, with the first and last loss written beside it."""
    points = [(float(step), float(loss)) for step, loss in (losses or [])
              if loss is not None and math.isfinite(float(loss))]
    if not points:
        return '<div class="muted">no loss recorded</div>'
    steps, values = [s for s, _ in points], [v for _, v in points]
    low, high = min(values), max(values)
    first, last = min(steps), max(steps)
    margin = 3

    def xy(step: float, value: float) -> str:
        x = margin + (CURVE_WIDTH - 2 * margin) * ((step - first) / (last - first) if last > first else 0.5)
        y = margin + (CURVE_HEIGHT - 2 * margin) * ((high - value) / (high - low) if high > low else 0.5)
        return f"{x:.1f},{y:.1f}"

    coordinates = " ".join(xy(step, value) for step, value in points)
    title = f"loss from {values[0]:.4g} (step {steps[0]:g}) to {values[-1]:.4g} (step {steps[-1]:g})"
    return (
        f'<svg width="{CURVE_WIDTH}" height="{CURVE_HEIGHT}" viewBox="0 0 {CURVE_WIDTH} {CURVE_HEIGHT}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<rect width="100%" height="100%" fill="#f4f6f8"/>'
        f'<polyline fill="none" stroke="#2a6fdb" stroke-width="1.5" points="{coordinates}"/></svg>'
        f'<div class="muted">loss {values[0]:.4g} → {values[-1]:.4g} (min {low:.4g}) over {len(points)} points</div>'
    )


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _entries(values: Mapping[str, Any] | None) -> str:
    return "".join(f"<dt>{escape(str(key))}</dt><dd>{escape(_value(value))}</dd>"
                   for key, value in (values or {}).items() if value is not None)


def _job(row: Mapping[str, Any], page: Path) -> str:
    status = str(row.get("status") or "unknown")
    output = row.get("output")
    picture = '<span class="muted">no image</span>'
    if output:
        uri = _thumbnail(Path(output))
        inner = f'<img src="{uri}" alt="{escape(str(row.get("name", "")))}">' if uri else '<span class="muted">open</span>'
        picture = f'<a href="{escape(_link(output, page))}">{inner}</a>'
    details = {"seed": row.get("seed"), "time": f"{float(row.get('seconds') or 0):.1f} s", "output": output,
               **({"peak GPU memory": peak} if (peak := peak_memory_text(row)) else {}),
               **({"rank": row["rank"]} if row.get("rank") else {})}
    error = f'<div class="error">{escape(str(row["error"]))}</div>' if row.get("error") else ""
    return (
        f'<section class="job {escape(status)}" id="job-{escape(str(row.get("index", "")))}">'
        f'<div class="thumb">{picture}</div><div class="about">'
        f'<div class="name">{escape(str(row.get("name", "")))}</div>'
        f'<span class="status {escape(status)}">{escape(status)}</span>{error}'
        f'<dl>{_entries(row.get("inputs"))}{_entries(details)}{_entries(row.get("settings"))}</dl>'
        f'{loss_curve(row.get("losses"))}</div></section>'
    )


def render_html_report(path: str | Path, rows: Sequence[Mapping[str, Any]], title: str = "adcli run",
                       refresh_seconds: int | None = None) -> str:
    """The page's markup for ``rows`` (links relative to ``path``'s folder), one card per job in index order."""
    page = Path(path)
    rows = sorted(rows, key=lambda row: row.get("index", 0))
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row.get("status"))] = counts.get(str(row.get("status")), 0) + 1
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "no jobs yet"
    seconds = sum(float(row.get("seconds") or 0) for row in rows)
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">' if refresh_seconds else ""
    cards = "\n".join(_job(row, page) for row in rows)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{refresh}'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
        f"<h1>{escape(title)}</h1><div class=\"summary\">{len(rows)} job(s): {escape(summary)} · "
        f"{seconds:.1f} s of work</div>\n<div class=\"jobs\">\n{cards}\n</div>\n</body></html>\n"
    )


def write_html_report(path: str | Path, rows: Sequence[Mapping[str, Any]], title: str = "adcli run",
                      refresh_seconds: int | None = None) -> Path:
    """Write the report page atomically (rewrite it after each job: a browser never sees half a page).

    ``refresh_seconds`` makes the page reload itself while a batch runs; leave it None for the last write.
    """
    markup = render_html_report(path, rows, title, refresh_seconds)
    return replace_atomically(path, lambda stream: stream.write(markup.encode("utf-8")), "report")
