"""LoRA files made from the tiny models, in diffusers' format (``save_lora_weights``) and kohya's.

peft adds random LoRA layers (``lora_B`` is filled too: peft starts it at zero, which would make
a LoRA that changes nothing); the layers are then read back with peft's state-dict helper.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

from adcli.engine.tiny import build_tiny_components

RANK = 4
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def lora_layers(arch: str, seed: int = 1, text_encoder: bool = True) -> dict[str, dict[str, torch.Tensor]]:
    """peft-format LoRA weights for each part of a tiny ``arch`` model: {"unet": …, "text_encoder": …}."""
    components = build_tiny_components({"sd15": "tiny", "sdxl": "tiny-sdxl"}[arch])
    parts = {"unet": (components["unet"], UNET_TARGETS)}
    if text_encoder:
        parts["text_encoder"] = (components["text_encoder"], TEXT_TARGETS)
        if arch == "sdxl":
            parts["text_encoder_2"] = (components["text_encoder_2"], TEXT_TARGETS)
    layers = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, (module, targets) in parts.items():
            inject_adapter_in_model(LoraConfig(r=RANK, lora_alpha=RANK, target_modules=targets), module)
            for key, param in module.named_parameters():
                if "lora_B" in key:
                    torch.nn.init.normal_(param, std=0.2)
            layers[name] = {k: v.detach().clone() for k, v in get_peft_model_state_dict(module).items()}
    return layers


def save_diffusers_lora(layers: dict, folder: Path, arch: str) -> Path:
    """The file diffusers' training scripts write (``pytorch_lora_weights.safetensors``)."""
    pipeline = StableDiffusionXLPipeline if arch == "sdxl" else StableDiffusionPipeline
    kwargs = {f"{name}_lora_layers": convert_state_dict_to_diffusers(sd) for name, sd in layers.items()}
    pipeline.save_lora_weights(save_directory=str(folder), safe_serialization=True, **kwargs)
    return Path(folder) / "pytorch_lora_weights.safetensors"


def save_kohya_lora(layers: dict, path: Path, alpha: float = RANK) -> Path:
    """kohya's layout: ``lora_unet_<module_with_underscores>.lora_down.weight``, ``.lora_up.weight``, ``.alpha``."""
    prefixes = {"unet": "lora_unet_", "text_encoder": "lora_te_"}
    out = {}
    for part, sd in layers.items():
        for key, value in sd.items():
            module, _, kind = key.rpartition(".lora_")
            name = prefixes[part] + module.replace(".", "_")
            out[f"{name}.lora_{'down' if kind.startswith('A') else 'up'}.weight"] = value.contiguous()
            out[f"{name}.alpha"] = torch.tensor(float(alpha))
    save_file(out, str(path))
    return Path(path)
