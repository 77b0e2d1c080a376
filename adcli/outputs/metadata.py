"""What every output records about how it was made, and the fingerprint --resume compares.

An output is the same when its task, pixel-relevant settings, inputs and seed match. Inputs are
compared by content (SHA-256 of each input file) where the metadata records it, so moving the
input folder does not rerun a job, while editing an image does; so are LoRA files and a GGUF model
file. The quantization (``quantize``) is a setting like any other. Settings that do not change
pixels (the device, memory and speed switches) are left out; so are run options such as the
output path, --quiet, --overwrite and --report, which are not settings at all.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import adcli
from adcli.presets import SETTINGS, ResolvedSettings, parse_lora_spec

PEAK_KEY = "peak_gpu_memory_gb"  # an image's (and a report row's) peak GPU memory; absent on a CPU


def peak_memory_text(record: dict[str, Any]) -> str | None:
    """A metadata dict's or report row's peak GPU memory as people read it ("3.14 GB"); None without one."""
    value = record.get(PEAK_KEY)
    return None if value is None else f"{value:.2f} GB"

NON_PIXEL_SETTINGS = frozenset(name for name, setting in SETTINGS.items() if not setting.pixels)
_digests: dict[tuple[str, int, int], str] = {}
_resolved: dict[str, str] = {}  # a path as given → the file it names (a plan names the same files again and again)


def file_digest(path: Path) -> str | None:
    """``sha256:…`` of a file's bytes (cached per path, size and mtime); None when unreadable."""
    try:
        stat = path.stat()
        given = str(path)
        if given not in _resolved:
            _resolved[given] = str(path.resolve())
        key = (_resolved[given], stat.st_size, stat.st_mtime_ns)
        if key not in _digests:
            digest = hashlib.sha256()
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
            _digests[key] = f"sha256:{digest.hexdigest()}"
        return _digests[key]
    except OSError:
        return None


def lora_files(resolved: ResolvedSettings) -> list[Path]:
    """The settings' LoRAs that are local files (``path[:scale]``): their digests join the fingerprint."""
    paths = [parse_lora_spec(text)[0] for text in getattr(resolved.settings, "loras", ())]
    return [Path(p) for p in paths if Path(p).is_file()]


def model_files(resolved: ResolvedSettings) -> list[Path]:
    """The settings' model when it is a local GGUF file (quantized weights whose file names rarely say
    which quantization they hold): its digest joins the metadata and the fingerprint, so that an edited
    or replaced file makes --resume run the job again while a moved one does not."""
    model = getattr(resolved.settings, "model", None)
    path = Path(str(model)).expanduser() if model else None
    return [path] if path is not None and path.suffix.lower() == ".gguf" and path.is_file() else []


def job_metadata(resolved: ResolvedSettings, inputs: dict[str, Any], files: list[Path], seed: int) -> dict[str, Any]:
    """Everything an image records about how it was made (``model_arch`` is added once the model is loaded)."""
    digests = {str(path): file_digest(path) for path in [*files, *lora_files(resolved)]}
    digests.update({str(resolved.settings.model): file_digest(path) for path in model_files(resolved)})
    return {
        "adcli_version": adcli.__version__,
        **resolved.as_dict(),
        "inputs": inputs,
        "input_digests": {path: digest for path, digest in digests.items() if digest},
        "seed": seed,
    }


def _canonical(value: Any, digests: dict[str, str]) -> Any:
    if isinstance(value, str):
        return digests.get(value, value)
    if isinstance(value, (list, tuple)):
        return [_canonical(item, digests) for item in value]
    if isinstance(value, dict):
        return {key: _canonical(item, digests) for key, item in value.items()}
    return value


def fingerprint(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The part of an output's metadata that decides its pixels; None if it is not adcli's."""
    try:
        settings = {k: v for k, v in metadata["settings"].items() if k not in NON_PIXEL_SETTINGS}
        digests = metadata.get("input_digests") or {}
        if settings.get("loras"):  # a LoRA file compares by its bytes, with its scale
            settings["loras"] = [_lora_fingerprint(text, digests) for text in settings["loras"]]
        if settings.get("model") in digests:  # a GGUF model file: by its bytes
            settings["model"] = digests[settings["model"]]
        found = {
            "task": metadata["task"],
            "settings": settings,
            "inputs": _canonical(metadata["inputs"], digests),
            "seed": metadata["seed"],
        }
    except (KeyError, TypeError, AttributeError):
        return None
    return json.loads(json.dumps(found, sort_keys=True))  # tuples → lists, as a stored PNG has them


def _lora_fingerprint(text: str, digests: dict[str, str]) -> str:
    path, scale = parse_lora_spec(text)
    return f"{digests.get(path, path)}:{scale}"
