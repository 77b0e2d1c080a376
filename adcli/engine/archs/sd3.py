"""Stable Diffusion 3 / 3.5 (Large, Large Turbo, Medium): ``SD3Transformer2DModel`` on unpacked
latents (it patchifies them itself), two CLIPs and a T5, classifier-free guidance, a static-shift
flow-matching schedule. SD3.5 Medium's blocks 0–12 add an image-only attention (``attn2``), counted
as an AD layer of its own, right after its block's joint attention.

The published configs are those of ``stabilityai/stable-diffusion-3.5-medium``.
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


class SD3(TransformerArchitecture):
    name = "sd3"
    title = "Stable Diffusion 3.5"
    default_model = "stabilityai/stable-diffusion-3.5-medium"
    tiny_models = ("tiny-sd3",)
    pipeline_class = "StableDiffusion3Pipeline"
    transformer_class = "SD3Transformer2DModel"
    text_parts = (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"), ("tokenizer_3", "text_encoder_3"))
    classifier_free_guidance = True
    text_sequence_length = 256  # StableDiffusion3Pipeline's default
    # ComfyUI's published latent→RGB fit for the SD3 VAE (latents after shift and scaling).
    preview_factors = (
        (-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954), (0.1994, 0.0927, 0.0458), (0.0856, 0.0339, 0.0902),
        (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309), (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358),
        (-0.0194, 0.0020, 0.0669), (-0.0488, 0.0130, -0.0268), (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
        (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810), (-0.0596, -0.0465, -0.0293), (-0.1448, -0.1463, -0.1189),
    )
    preview_bias = (0.2394, 0.2135, 0.1925)
    published_configs = {
        "transformer": dict(
            attention_head_dim=64,
            caption_projection_dim=1536,
            dual_attention_layers=tuple(range(13)),
            in_channels=16,
            joint_attention_dim=4096,
            num_attention_heads=24,
            num_layers=24,
            out_channels=16,
            patch_size=2,
            pooled_projection_dim=2048,
            pos_embed_max_size=384,
            qk_norm="rms_norm",
            sample_size=128,
        ),
        "vae": dict(VAE16, scaling_factor=1.5305, shift_factor=0.0609),
        "scheduler": dict(shift=3.0),
    }

    # -- probe ----------------------------------------------------------------------------------
    def count_layers(self, denoiser_config: dict) -> int:
        """Each block's joint attention plus each image-only ``attn2`` (Medium 24 + 13 = 37, Large 38)."""
        return int(denoiser_config.get("num_layers", 18)) + len(denoiser_config.get("dual_attention_layers") or ())

    # -- loading --------------------------------------------------------------------------------
    def build_tiny(self, name: str) -> Components:
        from adcli.engine.archs.tiny_transformers import build_tiny_sd3_components

        return build_tiny_sd3_components()

    def _small_text_parts(self, transformer: Any) -> Components:
        from adcli.engine.archs.tiny_transformers import small_text_parts

        config = transformer.config
        clip_l = 768
        return small_text_parts(clip_widths=(clip_l, config.pooled_projection_dim - clip_l), t5_width=config.joint_attention_dim)

    # -- running --------------------------------------------------------------------------------
    def capture_class(self) -> type:
        from adcli.engine.archs.joint_attention import SD3Capture

        return SD3Capture

    def schedule(self, backend: Backend, steps: int, latent_hw: tuple[int, int]) -> Schedule:
        """StableDiffusion3Pipeline's σ (linear between the shifted extremes, shifted again), then 0;
        the denoiser's timestep is σ·1000 in fp32."""
        from adcli.engine.archs.flow import scheduler_timestep, sd3_sigmas
        from adcli.engine.schedule import Schedule

        grid = self.image_grid(latent_hw)
        sigmas = sd3_sigmas(steps, backend.scheduler_config, grid[0] * grid[1])  # (N + 1,) fp32
        timesteps = scheduler_timestep(sigmas, backend.scheduler_config)
        return Schedule(sigmas.double(), timesteps.to(backend.device))

    def encode_prompts(self, backend: Backend, prompts: list[str]) -> Conditioning:
        """StableDiffusion3Pipeline.encode_prompt: CLIP-L ‖ CLIG-G penultimate states padded to T5's
        width, then T5's tokens (zeros when the model was loaded without its T5); the pooled pair."""
        from adcli.engine.archs.sd3_conditioning import encode_sd3_prompts
        from adcli.engine.backend import Conditioning

        tokenizers = list(backend.tokenizers) + [None] * (3 - len(backend.tokenizers))
        encoders = list(backend.text_encoders) + [None] * (3 - len(backend.text_encoders))
        length = self.text_length(backend, tokenizers[2]) if tokenizers[2] is not None else self.text_sequence_length
        prompt = encode_sd3_prompts(tokenizers, encoders, prompts, length, backend.device,
                                    backend.denoiser.config.joint_attention_dim)
        return Conditioning({"embeds": prompt.embeds.to(backend.dtype), "pooled": prompt.pooled.to(backend.dtype)})

    def model_inputs(
        self, backend: Backend, conditioning: Conditioning, batch: int, latent_hw: tuple[int, int],
        guidance: float | None = None,
    ) -> dict:
        conditioning = conditioning.repeat(batch)
        return {"encoder_hidden_states": conditioning["embeds"], "pooled_projections": conditioning["pooled"]}

    def predict(
        self, backend: Backend, latents: torch.Tensor, timestep: torch.Tensor, inputs: dict,
        control: Control | None = None,
    ) -> torch.Tensor:
        """The transformer on (B, 16, h, w) latents at its timestep σ·1000 (fp32, one per item)."""
        batch = latents.shape[0]
        latents = latents.to(backend.dtype)
        t = timestep.to(backend.device).reshape(-1).expand(batch)
        if control is not None:
            inputs = inputs | self._controlnet_residuals(backend, latents, t, inputs, control)
        return backend.denoiser(hidden_states=latents, timestep=t, return_dict=False, **inputs)[0]

    def _controlnet_residuals(self, backend: Backend, latents: torch.Tensor, t: torch.Tensor, inputs: dict,
                              control: Control) -> dict:
        from adcli.engine.archs.transformer_controlnet import sd3_controlnet_kwargs

        image = control.latents(backend).expand(latents.shape[0], -1, -1, -1).to(latents.dtype)
        return sd3_controlnet_kwargs(
            control.model, latents=latents, control_latents=image, timestep=t,
            prompt_embeds=inputs["encoder_hidden_states"], pooled=inputs["pooled_projections"], scale=control.scale,
        )
