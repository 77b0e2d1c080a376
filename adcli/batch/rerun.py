"""The job stored in an adcli image: its settings, inputs and seed, ready to make again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from adcli.errors import AdcliError, InputError
from adcli.presets import load_settings
from adcli.tasks.jobs import Job
from adcli.outputs.files import read_metadata
from adcli.tasks.registry import task


def job_from_metadata(path: Path, device: str | None = None) -> Job:
    """The job that made the adcli image ``path`` (any format adcli writes)."""
    if not path.is_file():
        raise InputError(f"{path} does not exist: give an image written by adcli")
    metadata = read_metadata(path)
    if metadata is None or "task" not in metadata:
        raise InputError(f"{path} has no adcli settings in it (not written by adcli, or the metadata was stripped)")
    name = metadata["task"]
    spec = task(name)
    settings = dict(metadata.get("settings") or {})
    if device:
        settings["device"] = device
    try:
        resolved = load_settings(name, None, settings, source=f"{path} (stored settings)")
    except AdcliError as error:
        raise InputError(f"{path} was written with settings this version cannot use: {error}") from None
    resolved = dataclasses.replace(resolved, preset=metadata.get("preset", resolved.preset), overrides=metadata.get("overrides", {}))
    stored = metadata.get("inputs") or {}
    inputs = spec.inputs.from_stored(stored, None, f"{path} (stored inputs)")
    return dataclasses.replace(spec.job(resolved, inputs), seed=int(metadata["seed"]))
