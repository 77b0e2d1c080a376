"""LoRA files for the tiny FLUX and SD3 transformers, saved as diffusers' training scripts save them.

peft adds LoRA layers to the attention projections (``lora_B`` filled with random values: peft
starts it at zero, which would make a LoRA that changes nothing); the layers are read back with
peft's state-dict helper and written by the pipeline's own ``save_lora_weights``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import FluxPipeline, StableDiffusion3Pipeline
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict

from adcli.engine.archs.tiny_transformers import build_tiny_flux_components, build_tiny_sd3_components

RANK = 4
TRANSFORMER_TARGETS = ["to_q", "to_k", "to_v"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _layers(module: torch.nn.Module, targets: list[str]) -> dict[str, torch.Tensor]:
    inject_adapter_in_model(LoraConfig(r=RANK, lora_alpha=RANK, target_modules=targets), module)
    for key, param in module.named_parameters():
        if "lora_B" in key:
            torch.nn.init.normal_(param, std=0.2)
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(module).items()}


def save_transformer_lora(arch: str, folder: Path, seed: int = 1, text_encoder: bool = False) -> Path:
    """A LoRA for the tiny ``arch`` (``flux``/``sd3``) transformer (and its first CLIP) in ``folder``."""
    components = build_tiny_flux_components() if arch == "flux" else build_tiny_sd3_components()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = {"transformer_lora_layers": _layers(components["transformer"], TRANSFORMER_TARGETS)}
        if text_encoder:
            layers["text_encoder_lora_layers"] = convert_state_dict_to_diffusers(
                _layers(components["text_encoder"], TEXT_TARGETS)
            )
    pipeline = FluxPipeline if arch == "flux" else StableDiffusion3Pipeline
    pipeline.save_lora_weights(save_directory=str(folder), safe_serialization=True, **layers)
    return Path(folder) / "pytorch_lora_weights.safetensors"
