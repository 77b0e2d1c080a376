"""FLUX.1 (dev and schnell): ``FluxTransformer2DModel`` over 2×2-packed tokens, CLIP-L pooled + T5
token conditioning, an *embedded* guidance value instead of classifier-free guidance (dev; schnell
has none), and FluxPipeline's resolution-shifted flow-matching schedule.

The published configs are those of ``black-forest-labs/FLUX.1-dev``. Which FLUX.1 a model is
(its *variant*: ``dev`` embeds guidance, ``schnell`` does not) is read from the transformer's
config; presets may hold schnell's own values under ``by_arch: flux-schnell``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adcli.engine.archs.base import Components
from adcli.engine.archs.transformer import VAE16, TransformerArchitecture

if TYPE_CHECKING:
    import torch

    from adcli.engine.backend import Backend, Conditioning
    from adcli.engine.controlnet import Control
    from adcli.engine.schedule import Schedule

# The guidance FLUX.1-dev embeds in feature passes (the paper's FLUX code: AD passes at guidance 1).
FEATURE_GUIDANCE = 1.0


class Flux(TransformerArchitecture):
    name = "flux"
    title = "FLUX.1"
    default_model = "black-forest-labs/FLUX.1-dev"
    tiny_models = ("tiny-flux", "tiny-flux-schnell")
    pipeline_class = "FluxPipeline"
    transformer_class = "FluxTransformer2DModel"
    text_parts = (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"))
    classifier_free_guidance = False
    variants = ("schnell",)
    text_sequence_length = 512  # FluxPipeline's default; schnell's model card: 256 (see text_length)
    # ComfyUI's published latent→RGB fit for FLUX.1's VAE (latents after shift and scaling).
    preview_factors = (
        (-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433), (-0.0174, 0.0160, 0.0617),
        (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115), (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259),
        (-0.0245, 0.0250, 0.1180), (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
        (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103), (-0.0280, -0.0881, -0.0499), (-0.1262, -0.0982, -0.0778),
    )
    preview_bias = (-0.0329, -0.0718, -0.0851)
    published_configs = {
        "transformer": dict(
            attention_head_dim=128,
            axes_dims_rope=(16, 56, 56),
            guidance_embeds=True,
            in_channels=64,
            joint_attention_dim=4096,
            num_attention_heads=24,
            num_layers=19,
            num_single_layers=38,
            patch_size=1,
            pooled_projection_dim=768,
        ),
        "vae": dict(VAE16, scaling_factor=0.3611, shift_factor=0.1159),
        "scheduler": dict(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                          base_image_seq_len=256, max_image_seq_len=4096),
    }

    # -- probe ----------------------------------------------------------------------------------
    def count_layers(self, denoiser_config: dict) -> int:
        """Double-stream blocks, then single-stream blocks (19 + 38 = 57)."""
        return int(denoiser_config.get("num_layers", 19)) + int(denoiser_config.get("num_single_layers", 38))

    def variant_of(self, denoiser_config: dict) -> str | None:
        """``schnell`` for a FLUX.1 without a guidance embedding; None for dev."""
        return None if denoiser_config.get("guidance_embeds", True) else "schnell"

    def checkpoint_variant(self, keys) -> str | None:
        from adcli.engine.archs.transformer_detect import probe_transformer_keys

        probe = probe_transformer_keys(keys)
        return "schnell" if probe is not None and probe.variant == "schnell" else None

    def tiny_variant(self, name: str) -> str | None:
        return "schnell" if name.endswith("schnell") else None

    # -- loading --------------------------------------------------------------------------------
    def build_tiny(self, name: str) -> Components:
        from adcli.engine.archs.tiny_transformers import build_tiny_flux_components

        return build_tiny_flux_components("schnell" if self.tiny_variant(name) else "dev")

    def _small_text_parts(self, transformer: Any) -> Components:
        from adcli.engine.archs.tiny_transformers import small_text_parts

        config = transformer.config
        return small_text_parts(clip_widths=(config.pooled_projection_dim,), t5_width=config.joint_attention_dim)

    # -- running --------------------------------------------------------------------------------
    def capture_class(self) -> type:
        from adcli.engine.archs.joint_attention import FluxCapture

        return FluxCapture

    def text_length(self, backend: Backend, tokenizer: Any) -> int:
        length = super().text_length(backend, tokenizer)
        return min(length, 256) if not backend.denoiser.config.guidance_embeds else length

    def schedule(self, backend: Backend, steps: int, latent_hw: tuple[int, int]) -> Schedule:
        """FluxPipeline's σ: ``linspace(1, 1/N, N)`` shifted by mu(image tokens) (dev; schnell: no
        shift), then 0; the denoiser's timestep is the scheduler's, σ·1000 in fp32."""
        from adcli.engine.archs.flow import flux_sigmas, scheduler_timestep
        from adcli.engine.schedule import Schedule

        grid = self.image_grid(latent_hw)
        sigmas = flux_sigmas(steps, grid[0] * grid[1], backend.scheduler_config)  # (N + 1,) fp32
        timesteps = scheduler_timestep(sigmas, backend.scheduler_config)
        return Schedule(sigmas.double(), timesteps.to(backend.device))

    def encode_prompts(self, backend: Backend, prompts: list[str]) -> Conditioning:
        """FluxPipeline.encode_prompt: CLIP's pooled output, T5's token sequence."""
        from adcli.engine.archs.flux_conditioning import encode_flux_prompts
        from adcli.engine.backend import Conditioning

        (tokenizer, tokenizer_2), (clip, t5) = backend.tokenizers, backend.text_encoders
        prompt = encode_flux_prompts(tokenizer, clip, tokenizer_2, t5, prompts,
                                     self.text_length(backend, tokenizer_2), backend.device)
        return Conditioning({"embeds": prompt.embeds.to(backend.dtype), "pooled": prompt.pooled.to(backend.dtype)})

    def model_inputs(
        self, backend: Backend, conditioning: Conditioning, batch: int, latent_hw: tuple[int, int],
        guidance: float | None = None,
    ) -> dict:
        """The prompt, the text (all zero) and image positions, and FLUX.1-dev's embedded guidance:
        ``guidance`` to generate, 1 in feature passes (``None``); schnell gets none."""
        import torch

        from adcli.engine.archs.flow import flux_image_ids, flux_text_ids

        conditioning = conditioning.repeat(batch)
        embeds = conditioning["embeds"]
        inputs = {
            "encoder_hidden_states": embeds,
            "pooled_projections": conditioning["pooled"],
            "txt_ids": flux_text_ids(embeds.shape[1], backend.device, backend.dtype),
            "img_ids": flux_image_ids(self.image_grid(latent_hw), backend.device, backend.dtype),
        }
        if backend.denoiser.config.guidance_embeds:
            value = FEATURE_GUIDANCE if guidance is None else guidance
            inputs["guidance"] = torch.full([1], value, device=backend.device, dtype=torch.float32).expand(batch)
        return inputs

    def predict(
        self, backend: Backend, latents: torch.Tensor, timestep: torch.Tensor, inputs: dict,
        control: Control | None = None,
    ) -> torch.Tensor:
        """Pack (B, 16, h, w) into (B, h/2·w/2, 64) tokens, call the transformer at σ (its timestep /
        1000, in the latents' dtype, as FluxPipeline does), unpack the velocity."""
        from adcli.engine.archs.flow import pack_latents, unpack_latents

        batch, grid = latents.shape[0], self.image_grid(tuple(latents.shape[-2:]))
        packed = pack_latents(latents.to(backend.dtype))
        t = timestep.to(backend.device).reshape(-1).expand(batch).to(packed.dtype) / 1000
        if control is not None:
            inputs = inputs | self._controlnet_residuals(backend, packed, t, inputs, control)
        output = backend.denoiser(hidden_states=packed, timestep=t, return_dict=False, **inputs)[0]
        return unpack_latents(output, grid)

    def _controlnet_residuals(self, backend: Backend, packed: torch.Tensor, t: torch.Tensor, inputs: dict,
                              control: Control) -> dict:
        from adcli.engine.archs.flow import pack_latents
        from adcli.engine.archs.transformer_controlnet import flux_controlnet_kwargs

        image = pack_latents(control.latents(backend)).expand(packed.shape[0], -1, -1)
        return flux_controlnet_kwargs(
            control.model, latents=packed, control_latents=image.to(packed.dtype), timestep=t,
            guidance=inputs.get("guidance"), prompt_embeds=inputs["encoder_hidden_states"],
            pooled=inputs["pooled_projections"], text_ids=inputs["txt_ids"], image_ids=inputs["img_ids"],
            scale=control.scale,
        )

    def from_pipeline_latents(self, latents: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
        """FluxPipeline's ``latents=`` (B, h/2·w/2, 64) as the engine's (B, 16, h, w)."""
        from adcli.engine.archs.flow import unpack_latents

        return unpack_latents(latents, self.image_grid(latent_hw))
