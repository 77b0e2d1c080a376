"""SD3/SD3.5's prompt encoding and denoiser call, as StableDiffusion3Pipeline does them, on modules
passed in.

A prompt is the two CLIPs' penultimate hidden states side by side (77 tokens, CLIP-L ‖ CLIP-G,
zero-padded to T5's width) followed by T5's token sequence, plus the two CLIPs' projected
pooled outputs side by side. SD3 uses classifier-free guidance: the negative prompt (the empty
string by default, encoded as it is) and the prompt in one batch, ``uncond + g·(cond − uncond)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from adcli.engine.archs.flow import Velocity, sd3_timestep


@dataclass
class SD3Prompt:
    """Encoded prompts: ``embeds`` (B, 77 + T, C) CLIP ‖ T5 tokens, ``pooled`` (B, P_L + P_G)."""

    embeds: torch.Tensor
    pooled: torch.Tensor

    def repeat(self, batch: int) -> SD3Prompt:
        """One prompt for each of ``batch`` latents (a batch of one expands; a full batch stays)."""
        if self.embeds.shape[0] == batch:
            return self
        return SD3Prompt(self.embeds.expand(batch, -1, -1), self.pooled.expand(batch, -1))

    @staticmethod
    def cat(parts: Sequence[SD3Prompt]) -> SD3Prompt:
        return SD3Prompt(torch.cat([p.embeds for p in parts]), torch.cat([p.pooled for p in parts]))


@torch.no_grad()
def encode_sd3_prompts(
    tokenizers: Sequence, text_encoders: Sequence, prompts: Sequence[str], max_sequence_length: int = 256,
    device: torch.device | None = None, joint_attention_dim: int | None = None,
) -> SD3Prompt:
    """``StableDiffusion3Pipeline.encode_prompt`` for ``prompts`` (no clip skip).

    ``tokenizers``/``text_encoders``: CLIP-L, CLIP-G, T5 (T5 may be None, as a pipeline loaded
    without it: its tokens are then zeros, ``joint_attention_dim`` wide). Both CLIPs are padded
    to the first tokenizer's length (77). Outputs on ``device`` (default: CLIP-L's); the CLIP
    tokens in CLIP-L's dtype, the T5 tokens in T5's, the pooled vectors in their encoders'.
    """
    prompts = list(prompts)
    clip_length = tokenizers[0].model_max_length
    device = device or text_encoders[0].device
    hidden, pooled = [], []
    for tokenizer, encoder in zip(tokenizers[:2], text_encoders[:2], strict=True):
        ids = tokenizer(prompts, padding="max_length", max_length=clip_length, truncation=True, return_tensors="pt")
        output = encoder(ids.input_ids.to(encoder.device), output_hidden_states=True)
        hidden.append(output.hidden_states[-2].to(device=device, dtype=text_encoders[0].dtype))  # (B, 77, C_i)
        pooled.append(output[0].to(device))  # text_embeds: the projected pooled output, (B, P_i)
    t5 = _t5_tokens(tokenizers[2], text_encoders[2], prompts, max_sequence_length, device,
                    joint_attention_dim, text_encoders[0].dtype)
    clip = torch.cat(hidden, dim=-1)
    clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))  # CLIP-L ‖ CLIP-G, zero-padded to T5's width
    return SD3Prompt(torch.cat([clip, t5], dim=-2), torch.cat(pooled, dim=-1))


def _t5_tokens(tokenizer, encoder, prompts: list[str], length: int, device, width: int | None, dtype) -> torch.Tensor:
    """T5's last hidden state (B, length, C) in its dtype, or zeros ``width`` wide without a T5."""
    if encoder is None:
        if width is None:
            raise ValueError("without a T5 encoder the T5 tokens are zeros: give the transformer's joint_attention_dim")
        return torch.zeros(len(prompts), length, width, device=device, dtype=dtype)
    ids = tokenizer(prompts, padding="max_length", max_length=length, truncation=True, add_special_tokens=True,
                    return_tensors="pt").input_ids
    return encoder(ids.to(encoder.device))[0].to(device=device, dtype=encoder.dtype)


def sd3_forward(
    transformer, latents: torch.Tensor, sigma: torch.Tensor, prompt: SD3Prompt, config: Mapping
) -> torch.Tensor:
    """One transformer pass on latents (B, 16, H, W) at σ: the velocity (B, 16, H, W) in the model's
    dtype. ``config`` is the scheduler's. Gradients flow when enabled (AD passes)."""
    batch = latents.shape[0]
    prompt = prompt.repeat(batch)
    return transformer(
        hidden_states=latents.to(transformer.dtype),
        timestep=sd3_timestep(sigma.to(latents.device), batch, config),
        encoder_hidden_states=prompt.embeds,
        pooled_projections=prompt.pooled,
        joint_attention_kwargs=None,
        return_dict=False,
    )[0]


def sd3_denoiser(
    transformer, prompt: SD3Prompt, config: Mapping, negative: SD3Prompt | None = None, guidance: float = 1.0
) -> Velocity:
    """``v = denoise(latents, σ)`` for :func:`~adcli.engine.archs.flow.sample_euler`: with classifier-free
    guidance when ``negative`` is given and ``guidance`` > 1 — one batch [negative, prompt], as
    StableDiffusion3Pipeline's loop does — else the prompt alone."""
    use_cfg = negative is not None and guidance > 1

    def denoise(latents: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if not use_cfg:
            return sd3_forward(transformer, latents, sigma, prompt, config)
        batch = latents.shape[0]
        both = SD3Prompt.cat([negative.repeat(batch), prompt.repeat(batch)])
        uncond, cond = sd3_forward(transformer, torch.cat([latents] * 2), sigma, both, config).chunk(2)
        return uncond + guidance * (cond - uncond)

    return denoise
