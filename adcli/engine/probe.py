"""What a model is — its architecture, and how many attention layers AD can use — without loading it.

Checks of ``layers`` and ``arch`` can then run before the slow load. Reads only small files: a
diffusers folder's ``model_index.json`` and its denoiser's ``config.json``, a ``.safetensors``
header (the tensor names), or those JSON files in the Hugging Face cache for a hub id. Which
architecture they describe, and how its layers are counted, is asked of the registry
(:mod:`adcli.engine.archs`). Imports neither torch nor diffusers.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import NamedTuple

from adcli.engine import archs
from adcli.engine.archs.base import Architecture
from adcli.errors import ModelLoadError, setting

_MAX_HEADER = 100 * 1024 * 1024
_HUB_ID = re.compile(r"[\w-][\w.-]*/[\w.-]+")


class ModelProbe(NamedTuple):
    """A model's architecture (its registry name) and its number of AD-selectable attention layers."""

    arch: str
    self_attention_layers: int


def read_safetensors_header(path) -> dict:
    """The safetensors JSON header, checked against the file size, so that a truncated or foreign
    file fails here with one line instead of deep inside diffusers."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > min(size - 8, _MAX_HEADER):
                raise ValueError("header length out of range")
            header = json.loads(f.read(length))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, struct.error, KeyError, TypeError, IndexError, AttributeError) as err:
        raise ModelLoadError(f"{path} is not a readable .safetensors file ({err})") from None
    if max(ends, default=0) > size - 8 - length:
        raise ModelLoadError(f"{path} is truncated (incomplete download?); download it again")
    return header


def _checkpoint_arch(path, header: dict) -> Architecture:
    arch = archs.detect_checkpoint(header.keys())
    if arch is None:
        raise ModelLoadError(f"{path} is not a {archs.titles()} base checkpoint in the original single-file layout")
    arch.check_checkpoint(path, header)
    return arch


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _start(path) -> bytes:
    try:
        with Path(path).open("rb") as stream:
            return stream.read(9)
    except OSError:
        return b""


def looks_like_safetensors(path) -> bool:
    """Whether the file starts as a safetensors file does: an 8-byte header length, then ``{``."""
    start = _start(path)
    return len(start) == 9 and start[8:9] == b"{" and struct.unpack("<Q", start[:8])[0] > 1


def require_safetensors_lora(path, spec: str) -> None:
    """A LoRA file must be .safetensors: a pickle (.bin, .pt, .ckpt) is never unpickled, since
    unpickling a file can run any code in it. The message says how to convert one."""
    path = Path(path)
    if looks_like_safetensors(path):
        return
    start = _start(path)
    pickled = path.suffix.lower() in PICKLE_SUFFIXES or start[:1] == b"\x80" or start[:2] == b"PK"  # a pickle, or torch's zip of one
    kind = "a pickle" if pickled else "not a .safetensors file"
    raise ModelLoadError(
        f"LoRA {spec} is {kind}: adcli reads only .safetensors LoRAs and never unpickles a file (that can run "
        f"code); convert it once, where you trust it: python -c \"import torch, safetensors.torch as st; "
        f"st.save_file(torch.load('{path.name}', weights_only=True), '{path.stem}.safetensors')\""
    )


def detect_arch(path) -> str:
    """The architecture's name, from the tensor names in the header only (no weights are read)."""
    return _checkpoint_arch(path, read_safetensors_header(path)).name


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path} could not be read ({error})") from None


def _probe_folder(folder: Path) -> ModelProbe | None:
    index = folder / "model_index.json"
    if not index.is_file():
        return None
    arch = archs.detect_index(_read_json(index), str(folder))
    config = folder / arch.denoiser_name / "config.json"
    if not config.is_file():
        return None
    return ModelProbe(arch.name, arch.count_layers(_read_json(config)))


def _probe_hub_cache(repo: str) -> ModelProbe | None:
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> str | None:
        found = try_to_load_from_cache(repo, filename)
        return found if isinstance(found, str) else None

    index = cached("model_index.json")
    if index is not None:
        arch = archs.detect_index(_read_json(index), repo)
        config = cached(f"{arch.denoiser_name}/config.json")
        return None if config is None else ModelProbe(arch.name, arch.count_layers(_read_json(config)))
    # no model index in the cache: the first denoiser config there that a family recognizes
    for folder in dict.fromkeys(arch.denoiser_name for arch in archs.ARCHITECTURES):
        config = cached(f"{folder}/config.json")
        found = None if config is None else archs.detect_denoiser_config(_read_json(config))
        if found is not None:
            return ModelProbe(found.name, found.count_layers(_read_json(config)))
    return None


def _probe_checkpoint(path: Path) -> ModelProbe:
    header = read_safetensors_header(path)
    arch = _checkpoint_arch(path, header)
    return ModelProbe(arch.name, arch.count_checkpoint_layers(header.keys()))


def probe_model(spec: str, model_config: str | None = None) -> ModelProbe | None:
    """``(arch, attention layers)`` of ``spec`` — a tiny model, a diffusers folder, a single
    ``.safetensors`` checkpoint, or a hub id whose configs are in the local HF cache — or None when
    that cannot be known before loading (a hub id not in the cache, anything unrecognized: the
    loader reports those). A checkpoint's ``model_config`` (folder or hub id), when it can be
    probed, must have the checkpoint's architecture. A broken file is a :class:`ModelLoadError`.
    """
    tiny = archs.tiny_model_arch(spec)
    if tiny is not None:
        return ModelProbe(tiny.name, tiny.tiny_layers(spec))
    path = Path(spec).expanduser()
    if path.is_dir():
        return _probe_folder(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            return None
        found = _probe_checkpoint(path)
        config = probe_model(model_config) if model_config else None
        if config is not None and config.arch != found.arch:
            raise ModelLoadError(
                f"{setting('model_config')} {model_config} is {config.arch} but the checkpoint {path} is {found.arch}: "
                f"pass a config of the same architecture"
            )
        return found
    if _HUB_ID.fullmatch(spec) and not spec.startswith((".", "~")):
        return _probe_hub_cache(spec)
    return None
