"""What a model is — SD1.5 or SDXL, and how many self-attention layers — without loading its weights.

Checks of ``--layers`` and ``--arch`` can then run before the slow load. Reads only small files:
a diffusers folder's ``model_index.json`` and ``unet/config.json``, a ``.safetensors`` header (the
tensor names), or those two JSON files in the Hugging Face cache for a hub id. Imports neither
torch nor diffusers.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import NamedTuple

from adcli.engine.defaults import TINY_MODELS
from adcli.errors import ModelLoadError

# The tiny models keep the real layouts (see engine/tiny.py): 16 self-attention layers for SD1.5, 70 for SDXL.
SELF_ATTENTION_LAYERS = {"sd15": 16, "sdxl": 70}
_MAX_HEADER = 100 * 1024 * 1024
_HUB_ID = re.compile(r"[\w-][\w.-]*/[\w.-]+")
_LDM_SELF_ATTENTION = re.compile(r"model\.diffusion_model\.(.+)\.attn1\.to_q\.weight")


class ModelProbe(NamedTuple):
    """A model's architecture (``"sd15"`` / ``"sdxl"``) and its number of self-attention layers."""

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
    """``"sd15"`` or ``"sdxl"``, from the tensor names in the header only (no weights are read)."""
    header = read_safetensors_header(path)
    keys = header.keys()
    has_unet = any(k.startswith("model.diffusion_model.") for k in keys)
    if has_unet and any(k.startswith("conditioner.embedders.1.") for k in keys):
        arch = "sdxl"
    elif has_unet and any(k.startswith("cond_stage_model.transformer.") for k in keys):
        arch = "sd15"
    else:
        raise ModelLoadError(
            f"{path} is not a Stable Diffusion 1.5 or SDXL base checkpoint in the original single-file layout"
        )
    conv_in = header.get("model.diffusion_model.input_blocks.0.0.weight", {}).get("shape", [0, 4])
    if conv_in[1] != 4:
        raise ModelLoadError(f"{path} has a UNet with {conv_in[1]} input channels (inpainting?); only 4 is supported")
    return arch


def _per_block(value, blocks: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * blocks


def _transformers(depth, layers: int) -> int:
    """Transformer blocks (one attn1 each) in a block of ``layers`` layers: ``depth`` each, or a per-layer list."""
    return sum(depth) if isinstance(depth, (list, tuple)) else depth * layers


def count_self_attention(unet_config: dict) -> int:
    """Self-attention (attn1) layers of a diffusers ``UNet2DConditionModel`` with this config,
    counted the way its constructor builds them (down blocks, mid block, up blocks)."""
    down, up = unet_config["down_block_types"], unet_config["up_block_types"]
    layers = _per_block(unet_config.get("layers_per_block", 2), len(down))
    depths = _per_block(unet_config.get("transformer_layers_per_block", 1), len(down))
    up_depths = unet_config.get("reverse_transformer_layers_per_block") or list(reversed(depths))
    total = sum(_transformers(depths[i], layers[i]) for i, kind in enumerate(down) if "CrossAttn" in kind)
    if (unet_config.get("mid_block_type") or "UNetMidBlock2DCrossAttn") == "UNetMidBlock2DCrossAttn":
        total += _transformers(depths[-1], 1)
    up_layers = list(reversed(layers))
    total += sum(_transformers(up_depths[i], up_layers[i] + 1) for i, kind in enumerate(up) if "CrossAttn" in kind)
    return total


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path} could not be read ({error})") from None


def _from_configs(model_index: dict | None, unet_config: dict) -> ModelProbe:
    """The loader's rule for the architecture: a second text encoder makes SDXL."""
    if model_index is not None:
        arch = "sdxl" if model_index.get("text_encoder_2") else "sd15"
    else:
        arch = "sdxl" if unet_config.get("addition_embed_type") == "text_time" else "sd15"
    return ModelProbe(arch, count_self_attention(unet_config))


def _probe_folder(folder: Path) -> ModelProbe | None:
    index, unet = folder / "model_index.json", folder / "unet" / "config.json"
    if not index.is_file() or not unet.is_file():
        return None
    return _from_configs(_read_json(index), _read_json(unet))


def _probe_hub_cache(repo: str) -> ModelProbe | None:
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> str | None:
        found = try_to_load_from_cache(repo, filename)
        return found if isinstance(found, str) else None

    unet = cached("unet/config.json")
    if unet is None:
        return None
    index = cached("model_index.json")
    return _from_configs(None if index is None else _read_json(index), _read_json(unet))


def _probe_checkpoint(path: Path) -> ModelProbe:
    arch = detect_arch(path)
    names = {m[1] for key in read_safetensors_header(path) if (m := _LDM_SELF_ATTENTION.fullmatch(key))}
    return ModelProbe(arch, len(names))


def probe_model(spec: str, model_config: str | None = None) -> ModelProbe | None:
    """``(arch, self-attention layers)`` of ``spec`` — ``tiny``/``tiny-sdxl``, a diffusers folder,
    a single ``.safetensors`` checkpoint, or a hub id whose configs are in the local HF cache — or
    None when that cannot be known before loading (a hub id not in the cache, anything unrecognized:
    the loader reports those). A checkpoint's ``model_config`` (folder or hub id), when it can be
    probed, must have the checkpoint's architecture. A broken file is a :class:`ModelLoadError`.
    """
    if spec in TINY_MODELS:
        arch = TINY_MODELS[spec]
        return ModelProbe(arch, SELF_ATTENTION_LAYERS[arch])
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
                f"--model-config {model_config} is {config.arch} but the checkpoint {path} is {found.arch}: "
                f"pass a config of the same architecture"
            )
        return found
    if _HUB_ID.fullmatch(spec) and not spec.startswith((".", "~")):
        return _probe_hub_cache(spec)
    return None
