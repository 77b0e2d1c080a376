"""Jobs from a manifest: a CSV file with a header row, or JSON Lines; one job a row.

Columns: the command's inputs (style-transfer: ``content``, ``style``), ``name`` (the output
name, a template like --name), and any preset setting (``seed``, ``iterations``, ``size``, …),
which overrides the command line for that row. Relative image paths are relative to the
manifest's folder; several images in one cell are separated by ``;`` (CSV) or listed (JSON).
Every row is checked before any work starts: an unknown or missing column names its line.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from adcli.errors import AdcliError, InputError, PresetError
from adcli.presets import SETTINGS, TASK_KEYS, ResolvedSettings, load_settings
from adcli.presets.loader import MANIFEST_ROW
from adcli.tasks.jobs import Job
from adcli.batch.sources import once
from adcli.tasks.jobs import Note
from adcli.tasks.registry import task

Row = tuple[int, dict[str, Any]]  # (line number, column → value)


def _csv_rows(path: Path, text: str) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip() for cell in next(reader, [])]
    if not any(header):
        raise InputError(f"manifest {path} is empty: its first line must name the columns, e.g. content,style,seed")
    if "" in header or len(set(header)) != len(header):
        raise InputError(f"manifest {path}: the header {','.join(header)} has an empty or repeated column name")
    rows = []
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
            continue
        if len(cells) > len(header):
            raise InputError(f"manifest {path} line {line}: {len(cells)} cells but the header has {len(header)} columns")
        rows.append((line, {column: cell.strip() for column, cell in zip(header, cells) if cell.strip()}))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[Row]:
    rows = []
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            value = json.loads(content)
        except json.JSONDecodeError as error:
            raise InputError(f"manifest {path} line {line} is not valid JSON ({error.msg})") from None
        if not isinstance(value, dict):
            raise InputError(f'manifest {path} line {line} must be a JSON object, e.g. {{"content": "a.jpg", "style": "s.png"}}')
        rows.append((line, {str(key): item for key, item in value.items() if item is not None}))
    return rows


def read_manifest(path: Path) -> list[Row]:
    """The rows of a ``.csv`` or ``.jsonl`` manifest, with the line each came from."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise InputError(f"manifest {path} must be a .csv file (with a header row) or a .jsonl file (one JSON object a line)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"manifest {path} does not exist: check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read manifest {path}: {error}") from None
    rows = _csv_rows(path, text) if suffix == ".csv" else _jsonl_rows(path, text)
    if not rows:
        raise InputError(f"manifest {path} has no jobs (no rows after the header)")
    return rows


def _scalar(annotation: Any, text: str) -> Any:
    if annotation is bool:
        lowered = text.lower()
        if lowered not in ("true", "false", "yes", "no", "1", "0"):
            raise ValueError
        return lowered in ("true", "yes", "1")
    if annotation in (int, float):
        return annotation(text)
    return text


def setting_value(annotation: Any, value: Any) -> Any:
    """A manifest cell (text in CSV) as the setting's type; the preset loader then checks it."""
    if not isinstance(value, str) or annotation is str:
        return value
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value.lower() in ("null", "none"):
            return None
        return setting_value(next(a for a in args if a is not type(None)), value)
    if origin is Literal:
        return value
    if origin is tuple:
        return [_scalar(args[0], part) for part in re.split(r"[,;\s]+", value.strip()) if part]
    return _scalar(annotation, value)


def manifest_jobs(task_name: str, path: Path, preset: Path | None, overrides: dict[str, Any], note: Note | None = None) -> list[Job]:
    """One job per row; each row's settings are the command line's with the row's columns on top.

    Rows with the same settings share one resolved settings object: a 10,000-row manifest
    resolves its settings once per distinct combination, not once per row.
    """
    spec = task(task_name)
    note = once(note) if note is not None else None
    hints = {key: SETTINGS[key].annotation for key in TASK_KEYS[task_name] if not SETTINGS[key].run_option}
    roles = [role.name for role in spec.roles]
    required = [role.name for role in spec.roles if role.required]
    resolved_for: dict[str, ResolvedSettings] = {}
    job_for: dict[tuple[str, str], Job] = {}
    jobs = []
    for line, raw in read_manifest(path):
        where = f"manifest {path} line {line}"
        row = {key.strip().replace("-", "_"): value for key, value in raw.items()}
        unknown = sorted(set(row) - set(roles) - set(hints) - {"name"})
        if unknown:
            raise InputError(
                f"{where}: unknown column(s) {', '.join(unknown)}; columns are {', '.join(roles)}, name "
                f"and the settings {', '.join(sorted(hints))}"
            )
        missing = [name for name in required if name not in row]
        if missing:
            raise InputError(f"{where}: no {' or '.join(missing)}; every row needs {', '.join(required)}")
        given = {}
        for name, value in row.items():
            if name in hints:
                try:
                    given[name] = setting_value(hints[name], value)
                except ValueError:
                    raise PresetError(f"{where}: {name} {value!r} is not a value of the right kind for that setting") from None
        key = json.dumps(given, sort_keys=True, default=str)
        if key not in resolved_for:
            try:
                resolved_for[key] = load_settings(task_name, preset, {**overrides, **given}, source=MANIFEST_ROW)
            except AdcliError as error:
                raise PresetError(f"{where}: {error}") from None
        same = (key, json.dumps({name: row[name] for name in roles if name in row}, sort_keys=True, default=str))
        if same not in job_for:  # identical rows (a pair repeated for many seeds) share one job
            job_for[same] = spec.job(resolved_for[key], spec.inputs.from_stored(row, path.parent, where), None, note)
        job = job_for[same]
        jobs.append(dataclasses.replace(job, output_name=str(row["name"])) if "name" in row else job)
    return jobs
