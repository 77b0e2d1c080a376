"""ControlNets for FLUX.1 and SD3/SD3.5: tiny test builders, loading, and the keyword arguments
each transformer call takes from one.

A FLUX ControlNet (``FluxControlNetModel``: InstantX, Union, Shakker…) runs a few copies of the
transformer's blocks on the latents plus the packed latents of the control image, and returns one
residual per double block and per single block: the transformer takes them as
``controlnet_block_samples`` / ``controlnet_single_block_samples`` and adds each to the image
stream after the matching block (a short list is spread evenly over the blocks). An SD3
ControlNet (``SD3ControlNetModel``) does the same for the joint blocks:
``block_controlnet_hidden_states``. As for SD, AD's feature passes take no ControlNet; only the
generation passes do.
"""

from __future__ import annotations

from pathlib import Path

import torch

from adcli.errors import ModelLoadError, setting

TINY_CONTROLNET_SEED = 1


def _randomize_zero_projections(controlnet: torch.nn.Module) -> torch.nn.Module:
    """The output projections start at zero (a fresh ControlNet changes nothing); small random
    weights make its residuals measurable in tests."""
    for name, param in controlnet.named_parameters():
        if "controlnet_" in name or "pos_embed_input" in name or "controlnet_x_embedder" in name:
            torch.nn.init.normal_(param, std=0.02)
    return controlnet.eval().requires_grad_(False)


def tiny_flux_controlnet(transformer: torch.nn.Module, double_layers: int = 2, single_layers: int = 2):
    """A seeded ``FluxControlNetModel`` shaped like ``transformer`` with a few blocks (the real ones
    have 2–5 double and 0–10 single), for tests."""
    from diffusers import FluxControlNetModel

    config = transformer.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_CONTROLNET_SEED)
        controlnet = FluxControlNetModel(
            patch_size=config.patch_size, in_channels=config.in_channels, num_layers=double_layers,
            num_single_layers=single_layers, attention_head_dim=config.attention_head_dim,
            num_attention_heads=config.num_attention_heads, joint_attention_dim=config.joint_attention_dim,
            pooled_projection_dim=config.pooled_projection_dim, guidance_embeds=config.guidance_embeds,
            axes_dims_rope=list(config.axes_dims_rope),
        )
        return _randomize_zero_projections(controlnet)


def tiny_sd3_controlnet(transformer: torch.nn.Module, layers: int = 2):
    """A seeded ``SD3ControlNetModel`` shaped like ``transformer`` with a few joint blocks."""
    from diffusers import SD3ControlNetModel

    config = transformer.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_CONTROLNET_SEED)
        controlnet = SD3ControlNetModel(
            sample_size=config.sample_size, patch_size=config.patch_size, in_channels=config.in_channels,
            num_layers=layers, attention_head_dim=config.attention_head_dim,
            num_attention_heads=config.num_attention_heads, joint_attention_dim=config.joint_attention_dim,
            caption_projection_dim=config.caption_projection_dim, pooled_projection_dim=config.pooled_projection_dim,
            out_channels=config.out_channels, pos_embed_max_size=config.pos_embed_max_size,
            qk_norm=config.qk_norm, force_zeros_for_pooled_projection=False,
        )
        return _randomize_zero_projections(controlnet)


def load_transformer_controlnet(arch: str, source: str, *, dtype: torch.dtype, local_only: bool):
    """A FLUX/SD3 ControlNet from a diffusers folder or hub id, frozen, in ``dtype``."""
    from diffusers import FluxControlNetModel, SD3ControlNetModel

    cls = FluxControlNetModel if arch == "flux" else SD3ControlNetModel
    path = Path(source).expanduser()
    try:
        controlnet = cls.from_pretrained(str(path) if path.is_dir() else source, torch_dtype=dtype,
                                         local_files_only=local_only or path.is_dir())
    except (OSError, ValueError) as error:
        detail = " ".join(str(error).split())[:160]
        raise ModelLoadError(f"ControlNet {source} could not be loaded ({cls.__name__}: {detail}): check "
                             f"{setting('controlnet')}") from None
    return controlnet.eval().requires_grad_(False)


def check_controlnet_fits(controlnet, transformer, name: str) -> None:
    """A ControlNet of another width or text width than the transformer is a one-line error."""
    ours, theirs = transformer.config, controlnet.config
    for key in ("num_attention_heads", "attention_head_dim", "joint_attention_dim"):
        if getattr(ours, key) != getattr(theirs, key):
            raise ModelLoadError(
                f"ControlNet {name} was made for another model ({key} {getattr(theirs, key)}, the model's is "
                f"{getattr(ours, key)}): use a ControlNet made for this model"
            )


def flux_controlnet_kwargs(controlnet, *, latents, control_latents, timestep, guidance, prompt_embeds, pooled,
                           text_ids, image_ids, scale: float = 1.0) -> dict:
    """What a FLUX transformer call takes from ``controlnet``: its residuals for the double and the
    single blocks. ``latents`` and ``control_latents`` packed (B, N, 64); the other inputs as the
    transformer gets them (``guidance`` only for a ControlNet that embeds one, as FluxControlNetPipeline)."""
    blocks, singles = controlnet(
        hidden_states=latents, controlnet_cond=control_latents, conditioning_scale=scale, timestep=timestep,
        guidance=guidance if controlnet.config.guidance_embeds else None, pooled_projections=pooled,
        encoder_hidden_states=prompt_embeds, txt_ids=text_ids, img_ids=image_ids, return_dict=False,
    )
    return {"controlnet_block_samples": blocks, "controlnet_single_block_samples": singles}


def sd3_controlnet_kwargs(controlnet, *, latents, control_latents, timestep, prompt_embeds, pooled,
                          scale: float = 1.0) -> dict:
    """What an SD3 transformer call takes from ``controlnet``: one residual per joint block it has.
    As StableDiffusion3ControlNetPipeline: zero pooled projections for a ControlNet that wants them
    (SD3.5 Large's), no text for one without a context embedder."""
    config = controlnet.config
    return {"block_controlnet_hidden_states": controlnet(
        hidden_states=latents, controlnet_cond=control_latents, conditioning_scale=scale, timestep=timestep,
        encoder_hidden_states=prompt_embeds if config.joint_attention_dim is not None else None,
        pooled_projections=torch.zeros_like(pooled) if config.force_zeros_for_pooled_projection else pooled,
        return_dict=False,
    )[0]}
