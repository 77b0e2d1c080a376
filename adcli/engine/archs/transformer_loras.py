"""LoRAs for FLUX.1 and SD3/SD3.5, read by diffusers' FLUX/SD3 LoRA loaders and fused at load time.

As for SD (:mod:`adcli.engine.loras`): the transformer part goes through the loader's
``load_lora_into_transformer`` (which knows the diffusers, kohya, BFL and XLabs key styles) and is
fused at its scale with ``fuse_lora``, then the LoRA layers are removed; the CLIP text-encoder part
is fused by adcli's own ``W += scale · (alpha / rank) · B @ A``, since transformers 5.24 refuses
diffusers' text-encoder adapters below peft 0.22. A LoRA with weights for modules this transformer
lacks — another architecture's — is a one-line error naming both architectures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from adcli.engine.loras import (
    LoraInfo,
    _fuse_text_encoder,
    _split_by_component,
    _text_encoder_alphas,
    file_sha256,
    resolve_lora_file,
)
from adcli.engine.quiet import quiet_loading
from adcli.errors import ModelLoadError

ARCH_LABELS = {"flux": "FLUX", "sd3": "SD3"}
# Text encoders a LoRA may carry weights for (T5 LoRAs exist for neither loader).
TEXT_ENCODERS = {"flux": ("text_encoder",), "sd3": ("text_encoder", "text_encoder_2")}


def _loader(arch: str):
    from diffusers.loaders import FluxLoraLoaderMixin, SD3LoraLoaderMixin

    return {"flux": FluxLoraLoaderMixin, "sd3": SD3LoraLoaderMixin}[arch]


def lora_arch(keys) -> str | None:
    """The architecture a LoRA's module names point to: FLUX's single-stream blocks, SD3's image-only
    ``attn2`` or second text encoder; None when the names fit both."""
    keys = list(keys)
    if any("single_transformer_blocks" in k or "single_blocks" in k for k in keys):
        return "flux"
    if any(".attn2." in k or "joint_blocks" in k or k.startswith("text_encoder_2.") for k in keys):
        return "sd3"
    return None


def _mismatch(label: str, arch: str, state_dict: dict, what: str) -> ModelLoadError:
    other = lora_arch(state_dict)
    guess = f" (an {ARCH_LABELS[other]} LoRA?)" if other == "sd3" else f" (a {ARCH_LABELS[other]} LoRA?)" if other else ""
    return ModelLoadError(f"{label} does not fit this {ARCH_LABELS[arch]} model: it has weights for {what}{guess}")


def _lora_modules(state_dict: dict) -> set[str]:
    """Module names (without the ``transformer.`` prefix) that a diffusers-keyed LoRA adapts."""
    names = set()
    for key in state_dict:
        module = key.split(".lora_A.")[0].split(".lora_B.")[0].split(".lora.down.")[0].split(".lora.up.")[0]
        if module != key:
            names.add(module.removeprefix("transformer."))
    return names


def _fuse_transformer(loader, transformer, state_dict: dict, alphas, metadata, scale: float, adapter: str,
                      label: str, arch: str) -> None:
    expected = _lora_modules(state_dict)
    kwargs = {"network_alphas": alphas} if arch == "flux" else {}
    try:
        loader.load_lora_into_transformer(state_dict, transformer=transformer, adapter_name=adapter,
                                          metadata=metadata or None, **kwargs)
        adapted = {name for name, module in transformer.named_modules() if adapter in getattr(module, "lora_A", {})}
        missing = sorted(expected - adapted)
        if missing or not adapted:
            raise _mismatch(label, arch, state_dict, f"{missing[0] if missing else 'no module'}, which this transformer lacks")
        transformer.fuse_lora(lora_scale=scale, adapter_names=[adapter])
    except ModelLoadError:
        raise
    except Exception as error:  # peft/diffusers: shape mismatches, missing modules
        raise _mismatch(label, arch, state_dict, f"modules of other shapes ({' '.join(str(error).split())[:160]})") from None
    finally:
        if getattr(transformer, "peft_config", None):
            transformer.unload_lora()


def apply_transformer_loras(
    arch: str, transformer: torch.nn.Module, text_encoders: dict[str, torch.nn.Module],
    loras: Sequence[tuple[str, float]], *, local_files_only: bool,
) -> tuple[LoraInfo, ...]:
    """Fuse each ``(path_or_hub_id, scale)`` into ``transformer`` and the CLIP ``text_encoders``
    (``{"text_encoder": …, "text_encoder_2": …}``), in order; returns names, scales and SHA-256."""
    loader = _loader(arch)
    encoder_names = TEXT_ENCODERS[arch]
    infos = []
    for index, (spec, scale) in enumerate(loras):
        label, scale = f"LoRA {spec}", float(scale)
        if not torch.isfinite(torch.tensor(scale)):
            raise ModelLoadError(f"{label}: scale {scale} is not a finite number")
        path = resolve_lora_file(spec, local_files_only=local_files_only)
        with quiet_loading():
            try:
                state_dict, *rest = loader.lora_state_dict(
                    str(path), return_lora_metadata=True, **({"return_alphas": True} if arch == "flux" else {})
                )
            except Exception as error:
                raise ModelLoadError(f"{label} could not be read as a LoRA ({' '.join(str(error).split())[:200]})") from None
            alphas, metadata = (rest[0], rest[1]) if arch == "flux" else (None, rest[0])
            if not state_dict or not any("lora" in key.lower() for key in state_dict):
                raise ModelLoadError(f"{label} is not a LoRA (no LoRA weights in {path.name})")
            parts, strays = _split_by_component(state_dict, ["transformer", *encoder_names])
            if strays:
                raise _mismatch(label, arch, state_dict, f"{strays[0].split('.')[0]}, which this model does not have")
            if parts["transformer"]:
                prefixed = {f"transformer.{k}": v for k, v in parts["transformer"].items()}
                _fuse_transformer(loader, transformer, prefixed, alphas, metadata, scale, f"adcli_lora_{index}", label, arch)
            for name in encoder_names:
                if parts[name]:
                    encoder_alphas = _text_encoder_alphas(parts[name], alphas, metadata, name)
                    _fuse_text_encoder(text_encoders[name], parts[name], encoder_alphas, scale, label)
        infos.append(LoraInfo(name=spec, scale=scale, sha256=file_sha256(path), path=str(path)))
    return tuple(infos)
