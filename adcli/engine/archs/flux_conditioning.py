"""FLUX.1's prompt encoding and denoiser call, as FluxPipeline does them, on modules passed in.

A prompt is CLIP's pooled output (one vector: the transformer's ``pooled_projections``) plus T5's
token sequence (the text half of the joint attention), whose RoPE positions are all zero.
FLUX.1-dev is guidance-distilled: instead of classifier-free guidance it *embeds* a guidance
value (3.5 to generate; the AD passes use 1); FLUX.1-schnell has no such input and must get none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from adcli.engine.archs.flow import Velocity, flux_text_ids, flux_timestep


@dataclass
class FluxPrompt:
    """Encoded prompts: ``embeds`` (B, T, C) T5's last hidden state, ``pooled`` (B, P) CLIP's pooled
    output, ``text_ids`` (T, 3) the text tokens' positions (zero)."""

    embeds: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor

    def repeat(self, batch: int) -> FluxPrompt:
        """One prompt for each of ``batch`` latents (a batch of one expands; a full batch stays)."""
        if self.embeds.shape[0] == batch:
            return self
        return FluxPrompt(self.embeds.expand(batch, -1, -1), self.pooled.expand(batch, -1), self.text_ids)


@torch.no_grad()
def encode_flux_prompts(
    tokenizer, text_encoder, tokenizer_2, text_encoder_2, prompts: Sequence[str],
    max_sequence_length: int = 512, device: torch.device | None = None,
) -> FluxPrompt:
    """``FluxPipeline.encode_prompt``: CLIP padded to its 77 tokens → pooled output; T5 padded to
    ``max_sequence_length`` (512 for dev, at most 256 for schnell) → its token sequence.

    Each output in its encoder's dtype, on ``device`` (default: the T5's); the text ids in CLIP's dtype.
    """
    prompts = list(prompts)
    device = device or text_encoder_2.device
    ids = tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    pooled = text_encoder(ids.to(text_encoder.device), output_hidden_states=False).pooler_output
    ids_2 = tokenizer_2(
        prompts, padding="max_length", max_length=max_sequence_length, truncation=True, return_tensors="pt"
    ).input_ids
    embeds = text_encoder_2(ids_2.to(text_encoder_2.device), output_hidden_states=False)[0]
    return FluxPrompt(
        embeds=embeds.to(device=device, dtype=text_encoder_2.dtype),
        pooled=pooled.to(device=device, dtype=text_encoder.dtype),
        text_ids=flux_text_ids(embeds.shape[1], device, text_encoder.dtype),
    )


def flux_guidance(transformer, value: float | None, batch: int, device: torch.device) -> torch.Tensor | None:
    """The ``guidance`` input, (batch,) fp32, for a transformer that embeds one (FLUX.1-dev); None for
    one that does not (schnell), whatever ``value`` is — sending it one fails inside the model."""
    if not transformer.config.guidance_embeds:
        return None
    if value is None:
        raise ValueError("this FLUX model embeds a guidance value (FLUX.1-dev): give one (3.5 to generate, 1 for AD)")
    return torch.full([1], value, device=device, dtype=torch.float32).expand(batch)


def flux_forward(
    transformer, latents: torch.Tensor, sigma: torch.Tensor, prompt: FluxPrompt, image_ids: torch.Tensor,
    guidance: float | None, config: Mapping,
) -> torch.Tensor:
    """One transformer pass on packed latents (B, N, 64) at σ: the velocity (B, N, 64) in the model's
    dtype. ``image_ids`` (N, 3) place the tokens (:func:`~adcli.engine.archs.flow.flux_image_ids`);
    ``config`` is the scheduler's. Gradients flow when enabled (AD passes)."""
    batch = latents.shape[0]
    prompt = prompt.repeat(batch)
    latents = latents.to(transformer.dtype)
    return transformer(
        hidden_states=latents,
        timestep=flux_timestep(sigma.to(latents.device), batch, latents.dtype, config),
        guidance=flux_guidance(transformer, guidance, batch, latents.device),
        pooled_projections=prompt.pooled,
        encoder_hidden_states=prompt.embeds,
        txt_ids=prompt.text_ids,
        img_ids=image_ids,
        joint_attention_kwargs={},
        return_dict=False,
    )[0]


def flux_denoiser(
    transformer, prompt: FluxPrompt, image_ids: torch.Tensor, guidance: float | None, config: Mapping
) -> Velocity:
    """``v = denoise(latents, σ)`` for :func:`~adcli.engine.archs.flow.sample_euler`: the prompt with
    the embedded ``guidance`` (FLUX.1-dev; ignored by schnell), as FluxPipeline's loop calls it."""
    embeds_guidance = guidance if transformer.config.guidance_embeds else None

    def denoise(latents: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return flux_forward(transformer, latents, sigma, prompt, image_ids, embeds_guidance, config)

    return denoise
