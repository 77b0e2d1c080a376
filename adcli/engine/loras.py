"""LoRAs: read by diffusers' own LoRA loader (kohya and diffusers formats), fused into the weights.

A LoRA is fused at its scale right after the model loads, so a run costs what it costs without
one and every task sees the same weights. Each LoRA is identified by the SHA-256 of its file, for
the metadata and ``--resume``'s fingerprint.

The denoiser part goes through diffusers' loader for the architecture (``load_lora_into_unet``,
``load_lora_into_transformer``) and ``fuse_lora``. The text-encoder
part cannot: diffusers hands it to transformers' ``load_adapter``, which transformers 5.24 refuses
below peft 0.22 (not released as of this writing). So the text-encoder weights, normalized by
diffusers' own key conversions, are fused here as ``W += scale · (alpha / rank) · B @ A`` — the
same sum peft's merge computes for a plain LoRA on a Linear layer.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from adcli.errors import ModelLoadError, setting

from adcli.engine.hub import hub_unavailable
from adcli.engine.quiet import quiet_loading

if TYPE_CHECKING:
    from adcli.engine.backend import Backend

# A diffusers-format LoRA on the hub keeps its weights under this name (``save_lora_weights``' default).
DEFAULT_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
_HUB_REPO = re.compile(r"[\w-][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class LoraInfo:
    """A fused LoRA as the metadata records it: the name the user gave, its scale, the file's SHA-256."""

    name: str
    scale: float
    sha256: str
    path: str

    def as_dict(self) -> dict:
        return {"name": self.name, "scale": self.scale, "sha256": self.sha256}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_lora_file(spec: str, *, local_files_only: bool = False) -> Path:
    """The local file of a LoRA: a path, a hub repo ``owner/name`` (its ``pytorch_lora_weights.safetensors``)
    or a file in a hub repo ``owner/name/file.safetensors``, fetched into (or found in) the HF cache."""
    from adcli.engine.probe import require_safetensors_lora

    path = Path(spec).expanduser()
    if path.is_file():
        require_safetensors_lora(path, spec)
        return path
    if path.is_dir():
        if (path / DEFAULT_WEIGHT_NAME).is_file():
            return path / DEFAULT_WEIGHT_NAME
        raise ModelLoadError(f"LoRA folder {path} has no {DEFAULT_WEIGHT_NAME}: pass the LoRA file itself")
    parts = spec.split("/")
    if spec.startswith((".", "/", "~")) or len(parts) < 2 or not _HUB_REPO.fullmatch("/".join(parts[:2])):
        raise ModelLoadError(f"LoRA {spec} does not exist: check the path given as {setting('loras')}")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:]) or DEFAULT_WEIGHT_NAME
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=local_files_only))
    except Exception as error:  # hub errors come in many classes; the user needs one line
        raise ModelLoadError(
            f"LoRA {spec!r} could not be found on the Hugging Face hub or in its cache ({type(error).__name__}): "
            f"download it once with `hf download {repo} {filename}`, or pass the path of a local LoRA file"
        ) from None


def _split_by_component(state_dict: dict, prefixes: Sequence[str]) -> tuple[dict[str, dict], list[str]]:
    """{component: its keys without the prefix}, and the keys that belong to none of ``prefixes``."""
    parts: dict[str, dict] = {prefix: {} for prefix in prefixes}
    strays = []
    for key, value in state_dict.items():
        head, _, rest = key.partition(".")
        if head in parts:
            parts[head][rest] = value
        else:
            strays.append(key)
    return parts, strays


def _peft_keys(state_dict: dict) -> dict:
    """Any of the LoRA key styles diffusers reads → peft's ``<module>.lora_A.weight`` / ``lora_B``."""
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft

    return convert_state_dict_to_peft(convert_state_dict_to_diffusers(state_dict))


def _lora_modules(peft_state_dict: dict) -> set[str]:
    return {key.rsplit(".lora_", 1)[0] for key in peft_state_dict if ".lora_" in key}


def _text_encoder_alphas(
    state_dict: dict, alphas: dict | None, metadata: dict | None, encoder_name: str
) -> tuple[dict[str, float], float | None, bool]:
    """Per-module alphas (kohya's ``.alpha``, keyed by the original down-weight name), a default
    alpha (diffusers' metadata) and rsLoRA, for one text encoder's part ``state_dict``."""
    original = list(state_dict)
    converted = list(_peft_keys(state_dict))  # the conversions rename keys one by one, in order
    per_module: dict[str, float] = {}
    for old, new in zip(original, converted, strict=True):
        alpha = (alphas or {}).get(f"{encoder_name}.{old}.alpha")
        if alpha is not None:
            per_module[new.rsplit(".lora_", 1)[0]] = float(alpha)
    config = {k.removeprefix(f"{encoder_name}."): v for k, v in (metadata or {}).items() if k.startswith(f"{encoder_name}.")}
    per_module |= {name: float(a) for name, a in (config.get("alpha_pattern") or {}).items()}
    default = config.get("lora_alpha")
    return per_module, None if default is None else float(default), bool(config.get("use_rslora", False))


@torch.no_grad()
def _fuse_text_encoder(
    encoder: torch.nn.Module, state_dict: dict, alphas: tuple[dict[str, float], float | None, bool], scale: float, label: str
) -> None:
    """W += scale · (alpha / rank) · B @ A for every Linear the LoRA names; alpha defaults to the rank."""
    weights = _peft_keys(state_dict)
    if not hasattr(encoder, "text_model"):  # transformers 5 flattens CLIPTextModel
        weights = {k.removeprefix("text_model."): v for k, v in weights.items()}
    if any("lora_magnitude_vector" in key for key in weights):
        raise ModelLoadError(f"{label}: DoRA text-encoder weights are not supported; use a plain LoRA")
    per_module, default_alpha, rslora = alphas
    per_module = {k.removeprefix("text_model.") if not hasattr(encoder, "text_model") else k: v for k, v in per_module.items()}
    modules = dict(encoder.named_modules())
    for name in sorted(_lora_modules(weights)):
        layer = modules.get(name)
        down, up = weights.get(f"{name}.lora_A.weight"), weights.get(f"{name}.lora_B.weight")
        if not isinstance(layer, torch.nn.Linear) or down is None or up is None:
            raise ModelLoadError(f"{label} has text-encoder weights for {name}, which this model does not have")
        rank = down.shape[0]
        if tuple(up.shape) != (layer.out_features, rank) or tuple(down.shape) != (rank, layer.in_features):
            raise ModelLoadError(f"{label} does not fit this model: its {name} has another shape")
        if scale == 0:
            continue
        alpha = per_module.get(name, default_alpha if default_alpha is not None else rank)
        scaling = alpha / (rank**0.5 if rslora else rank)
        delta = up.float() @ down.float()  # (out, rank) @ (rank, in)
        layer.weight += (scale * scaling * delta).to(layer.weight.device, layer.weight.dtype)


def _fuse_denoiser(loader, component: str, denoiser: torch.nn.Module, state_dict: dict, alphas: dict | None,
                   metadata: dict | None, scale: float, adapter: str, label: str) -> None:
    """diffusers loads the adapter into the denoiser (``component``: ``unet`` or ``transformer``, the
    name its loader uses); it is fused at ``scale`` and its layers removed.

    ``metadata`` is the file's whole LoRA metadata (diffusers picks the ``<component>.`` entries)."""
    from diffusers.utils import convert_unet_state_dict_to_peft

    expected = _lora_modules(convert_unet_state_dict_to_peft(dict(state_dict)))
    own_alphas = None if alphas is None else {k: v for k, v in alphas.items() if k.startswith(f"{component}.")}
    try:
        getattr(loader, f"load_lora_into_{component}")(
            {f"{component}.{k}": v for k, v in state_dict.items()}, own_alphas or None, **{component: denoiser},
            adapter_name=adapter, metadata=metadata or None,
        )
        adapted = {name for name, module in denoiser.named_modules() if adapter in getattr(module, "lora_A", {})}
        missing = sorted(expected - adapted)
        if missing:
            raise ModelLoadError(
                f"{label} does not fit this model: it has weights for {missing[0]}, which this model's {component} "
                f"lacks (a LoRA for another architecture?)"
            )
        denoiser.fuse_lora(lora_scale=scale, adapter_names=[adapter])
    except ModelLoadError:
        raise
    except Exception as error:  # peft and diffusers raise many kinds (shape mismatches, missing modules)
        detail = " ".join(str(error).split())[:200]
        raise ModelLoadError(f"{label} does not fit this model (a LoRA for another architecture?): {detail}") from None
    finally:
        if getattr(denoiser, "peft_config", None):
            denoiser.unload_lora()


def apply_loras(
    backend: Backend, loras: Sequence[tuple[str, float]], loader, read_options: dict | None = None
) -> tuple[LoraInfo, ...]:
    """Fuse each ``(path_or_hub_id, scale)`` into ``backend``'s denoiser and text encoders, in order.

    ``loader`` is diffusers' LoRA loader mixin of the architecture; ``read_options`` are its
    ``lora_state_dict`` keywords (e.g. the UNet's config). Raises a one-line :class:`ModelLoadError`
    naming the LoRA for a file that is not a LoRA or one made for another architecture. Returns
    each LoRA's name, scale and SHA-256.
    """
    if backend.shared and loras:
        raise ModelLoadError(
            "this model's weights belong to your diffusers pipeline: load LoRAs into it with "
            "pipe.load_lora_weights(...) before wrapping it"
        )
    component = backend.arch.denoiser_name
    encoder_names = [encoder for _, encoder in backend.arch.text_parts][: len(backend.text_encoders)]
    infos = []
    for index, (spec, scale) in enumerate(loras):
        label = f"LoRA {spec}"
        scale = float(scale)
        if not torch.isfinite(torch.tensor(scale)):
            raise ModelLoadError(f"{label}: scale {scale} is not a finite number")
        path = resolve_lora_file(spec, local_files_only=hub_unavailable())
        with quiet_loading():
            try:
                state_dict, alphas, metadata = loader.lora_state_dict(
                    str(path), **(read_options or {}), return_lora_metadata=True
                )
            except Exception as error:
                raise ModelLoadError(f"{label} could not be read as a LoRA ({' '.join(str(error).split())[:200]})") from None
            if not state_dict or not any("lora" in key.lower() for key in state_dict):
                raise ModelLoadError(f"{label} is not a LoRA (no LoRA weights in {path.name})")
            parts, strays = _split_by_component(state_dict, [component, *encoder_names])
            if strays:
                raise ModelLoadError(
                    f"{label} does not fit this {backend.arch.name} model: it has weights for {strays[0].split('.')[0]}, "
                    f"which this model does not have (a LoRA for another architecture?)"
                )
            if parts[component]:
                _fuse_denoiser(loader, component, backend.denoiser, parts[component], alphas, metadata, scale,
                               f"adcli_lora_{index}", label)
            for name, encoder in zip(encoder_names, backend.text_encoders, strict=True):
                if parts[name]:
                    alphas_of = _text_encoder_alphas(parts[name], alphas, metadata, name)
                    _fuse_text_encoder(encoder, parts[name], alphas_of, scale, label)
        infos.append(LoraInfo(name=spec, scale=scale, sha256=file_sha256(path), path=str(path)))
    return tuple(infos)
