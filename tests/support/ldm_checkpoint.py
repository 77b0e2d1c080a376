"""Write diffusers components back as an original Stable Diffusion single-file checkpoint.

Tests need `.safetensors` files in the layout real SD1.5/SDXL checkpoints use (the layout
diffusers' ``from_single_file`` converts from), built from the tiny random models. This is the
inverse of ``diffusers.loaders.single_file_utils`` (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint``, ``convert_open_clip_checkpoint``).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import save_file

_UNET_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPENCLIP_LAYER = [("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                   ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")]


def _resnet(rest: str) -> str:
    for new, old in _UNET_RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    raise KeyError(rest)


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    """diffusers UNet2DConditionModel → ``model.diffusion_model.*`` (input/middle/output_blocks)."""
    per = unet.config.layers_per_block + 1  # LDM numbers the downsampler/upsampler as an extra layer
    out = {}
    for key, value in unet.state_dict().items():
        head, _, tail = key.rpartition(".")  # tail: weight/bias
        if head in _UNET_TOP:
            new = f"{_UNET_TOP[head]}.{tail}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            i = 1 + b * per + j
            new = f"input_blocks.{i}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{i}.1.{rest}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"input_blocks.{1 + int(m[1]) * per + per - 1}.0.op.{m[2]}"
        elif m := re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key):
            if m[1] == "resnets":
                new = f"middle_block.{2 * int(m[2])}.{_resnet(m[3])}"
            else:
                new = f"middle_block.{2 * int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            i = b * per + j
            new = f"output_blocks.{i}.0.{_resnet(rest)}" if kind == "resnets" else f"output_blocks.{i}.1.{rest}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            b = int(m[1])
            slot = 2 if hasattr(unet.up_blocks[b], "attentions") else 1
            new = f"output_blocks.{b * per + per - 1}.{slot}.conv.{m[2]}"
        else:
            raise KeyError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL → ``first_stage_model.*`` (mid attention as 1×1 convs, decoder ``up`` reversed)."""
    n_up = len(vae.config.up_block_types)
    out = {}
    for key, value in vae.state_dict().items():
        new = key.replace("conv_norm_out", "norm_out")
        if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            new = f"{m[1]}.mid.attn_1.{_VAE_ATTN[m[2]]}.{m[3]}"
            if m[3] == "weight" and m[2] != "group_norm":
                value = value[:, :, None, None]
        new = new.replace("conv_shortcut", "nin_shortcut")
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(text_encoder, prefix: str) -> dict[str, torch.Tensor]:
    """transformers CLIPTextModel → ``<prefix>text_model.*`` (HF naming, as in the original files)."""
    out = {}
    for key, value in text_encoder.state_dict().items():
        out[prefix + (key if key.startswith("text_model.") else "text_model." + key)] = value
    return out


def open_clip_to_ldm(text_encoder, prefix: str) -> dict[str, torch.Tensor]:
    """transformers CLIPTextModelWithProjection → OpenCLIP naming: fused in_proj, transposed text_projection."""
    sd = {k.removeprefix("text_model."): v for k, v in text_encoder.state_dict().items()}
    out = {
        "positional_embedding": sd.pop("embeddings.position_embedding.weight"),
        "token_embedding.weight": sd.pop("embeddings.token_embedding.weight"),
        "ln_final.weight": sd.pop("final_layer_norm.weight"),
        "ln_final.bias": sd.pop("final_layer_norm.bias"),
        "text_projection": sd.pop("text_projection.weight").T.contiguous(),
    }
    for layer in range(text_encoder.config.num_hidden_layers):
        src = f"encoder.layers.{layer}."
        dst = f"transformer.resblocks.{layer}."
        for kind in ("weight", "bias"):
            qkv = [sd.pop(f"{src}self_attn.{p}_proj.{kind}") for p in "qkv"]
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(qkv, 0)
            for new, old in _OPENCLIP_LAYER:
                out[f"{dst}{old}.{kind}"] = sd.pop(f"{src}{new}.{kind}")
    if sd:
        raise KeyError(f"no OpenCLIP name for {sorted(sd)}")
    return {prefix + k: v for k, v in out.items()}


def ldm_state_dict(components: dict, arch: str) -> dict[str, torch.Tensor]:
    """The whole original-layout state dict of a pipeline's components."""
    sd = {**unet_to_ldm(components["unet"]), **vae_to_ldm(components["vae"])}
    if arch == "sd15":
        sd |= clip_to_ldm(components["text_encoder"], "cond_stage_model.transformer.")
    elif arch == "sdxl":
        te1, te2 = components["text_encoder"], components["text_encoder_2"]
        if te1.config.hidden_size == te2.config.hidden_size:
            # diffusers tells the two SDXL encoders apart by width only (768 vs 1280 in the real model)
            raise ValueError("SDXL text encoders of equal width cannot be told apart by from_single_file")
        sd |= clip_to_ldm(te1, "conditioner.embedders.0.transformer.")
        sd |= open_clip_to_ldm(te2, "conditioner.embedders.1.model.")
    else:
        raise ValueError(f"unknown architecture {arch!r}")
    return sd


def save_ldm_checkpoint(components: dict, path, arch: str) -> Path:
    """Save ``components`` as one original-layout ``.safetensors`` file at ``path``."""
    sd = {k: v.detach().cpu().contiguous() for k, v in ldm_state_dict(components, arch).items()}
    save_file(sd, str(path))
    return Path(path)
