"""What FLUX.1 and SD3/SD3.5 share: a joint-attention transformer over 2×2 patches of a 16-channel
latent, denoised by flow matching (Euler on a shifted σ schedule), T5 and CLIP text encoders, and
no padded convolutions (seamless tiling wraps windows or rolls the latent instead).

:class:`TransformerArchitecture` holds all of it; ``flux.py`` and ``sd3.py`` say what differs
(detection, text encoders, how σ and the text reach the denoiser, guidance, the capture
processors). The engine keeps latents unpacked, ``(B, 16, H/8, W/8)``, for every family: packing
into tokens is the denoiser call's business, so MultiDiffusion windows, AdaIN and tiling see the
same tensors as on a UNet. Module-level code imports neither torch nor diffusers.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from adcli.engine.archs.base import Architecture, Components
from adcli.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from adcli.engine.attention import FeatureStore
    from adcli.engine.backend import Backend
    from adcli.engine.prediction import Prediction

# The released VAEs of FLUX.1 and SD3.5 share one layout (16 latent channels, no quant convs).
VAE16 = dict(
    act_fn="silu",
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    in_channels=3,
    latent_channels=16,
    layers_per_block=2,
    norm_num_groups=32,
    out_channels=3,
    sample_size=1024,
    up_block_types=("UpDecoderBlock2D",) * 4,
    use_quant_conv=False,
    use_post_quant_conv=False,
    force_upcast=True,
)
DEFAULT_SAMPLE_SIZE = 128  # latents per side (1024 px): the pipelines' default when a config has none


def model_index_class(model_index: dict, component: str) -> str | None:
    """The class a ``model_index.json`` names for ``component`` (``["diffusers", "FluxTransformer2DModel"]``)."""
    entry = model_index.get(component)
    return entry[1] if isinstance(entry, (list, tuple)) and len(entry) == 2 else None


class TransformerArchitecture(Architecture):
    """A flow-matching joint-attention transformer family; subclasses set the names and what differs."""

    denoiser_name = "transformer"
    transformer_class = ""  # diffusers' class name of the denoiser
    layer_kind = "attention"
    quantizable = True
    latent_channels = 16
    patch_size = 2
    # T5 tokens a prompt is padded to, as the family's pipeline does by default (capped by the
    # tokenizer's own model_max_length: the tiny models use fewer).
    text_sequence_length = 512

    # -- probe ----------------------------------------------------------------------------------
    def claims_index(self, model_index: dict) -> bool:
        return model_index.get("_class_name") == self.pipeline_class or (
            model_index_class(model_index, "transformer") == self.transformer_class
        )

    def claims_denoiser_config(self, config: dict) -> bool:
        return config.get("_class_name") == self.transformer_class

    def claims_pipe(self, pipe: Any) -> bool:
        transformer = getattr(pipe, "transformer", None)
        return type(getattr(transformer, "_orig_mod", transformer)).__name__ == self.transformer_class

    def claims_checkpoint(self, keys: Collection[str]) -> bool:
        from adcli.engine.archs.transformer_detect import probe_transformer_keys

        probe = probe_transformer_keys(keys)
        return probe is not None and probe.arch == self.name

    def count_checkpoint_layers(self, keys: Collection[str]) -> int:
        from adcli.engine.archs.transformer_detect import probe_transformer_keys

        probe = probe_transformer_keys(keys)
        if probe is None:
            raise ModelLoadError(f"these tensors hold no {self.title} transformer")
        return probe.attention_layers

    # -- loading --------------------------------------------------------------------------------
    def load_pretrained(self, source: str, dtype: torch.dtype, local_only: bool, quantize: str | None = None) -> Components:
        from adcli.engine.archs.quantize import quantization_config
        from adcli.engine.archs.transformer_loading import load_pretrained_components

        quantization = quantization_config(quantize, compute_dtype=dtype)
        return load_pretrained_components(source, arch=self.name, dtype=dtype, local_only=local_only, quantization=quantization)

    def load_single_file(
        self, path: Any, config: str | None, dtype: torch.dtype, local_only: bool, quantize: str | None = None,
    ) -> Components:
        from adcli.engine.archs.transformer_loading import load_transformer_components

        return load_transformer_components(str(path), dtype=dtype, arch=self.name, model_config=config, quantize=quantize)[1]

    def pipeline(self, components: Components) -> Any:
        import diffusers

        return getattr(diffusers, self.pipeline_class)(**components)

    def components_of_pipe(self, pipe: Any) -> Components:
        from adcli.engine.archs.transformer_pipes import components_from_pipe

        return components_from_pipe(pipe)[1]

    def apply_loras(self, backend: Backend, loras: Sequence[tuple[str, float]]):
        from adcli.engine.archs.transformer_loras import apply_transformer_loras
        from adcli.engine.hub import hub_unavailable

        encoders = {encoder: module for (_, encoder), module in zip(self.text_parts, backend.text_encoders)}
        return apply_transformer_loras(self.name, backend.denoiser, encoders, loras, local_files_only=hub_unavailable())

    def load_controlnet(self, backend: Backend, source: str, local_only: bool) -> torch.nn.Module:
        from adcli.engine import archs
        from adcli.engine.archs import transformer_controlnet as control
        from adcli.engine.controlnet import TINY, place_controlnet
        from adcli.errors import setting

        if source == TINY:
            if archs.tiny_model_arch(backend.source) is None:
                tiny = " or ".join(archs.tiny_models())
                raise ModelLoadError(f"{setting('controlnet')} tiny is a random test model for the tiny models ({tiny}) only")
            build = control.tiny_flux_controlnet if self.name == "flux" else control.tiny_sd3_controlnet
            controlnet = build(backend.denoiser)
        else:
            controlnet = control.load_transformer_controlnet(self.name, source, dtype=backend.dtype, local_only=local_only)
        control.check_controlnet_fits(controlnet, backend.denoiser, source)
        return place_controlnet(controlnet, backend.device, backend.dtype)

    def full_size_components(self) -> Components:
        """The published transformer and VAE with random weights; small text encoders of the widths the
        transformer reads (the text encoders run once per prompt: not what a benchmark measures)."""
        import diffusers

        configs = self.published_configs
        transformer = getattr(diffusers, self.transformer_class)(**configs[self.denoiser_name])
        return {self.denoiser_name: transformer, "vae": diffusers.AutoencoderKL(**configs["vae"]),
                **self._small_text_parts(transformer), "scheduler": self._scheduler(configs["scheduler"])}

    def _small_text_parts(self, transformer: Any) -> Components:
        raise NotImplementedError

    @staticmethod
    def _scheduler(config: dict) -> Any:
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler(**config)

    # -- running --------------------------------------------------------------------------------
    def native_size(self, backend: Backend) -> tuple[int, int]:
        side = (backend.denoiser.config.get("sample_size") or DEFAULT_SAMPLE_SIZE) * backend.vae_scale_factor
        return side, side

    def prediction(self, backend: Backend) -> Prediction:
        from adcli.engine.prediction import FlowMatching

        return FlowMatching()

    def text_length(self, backend: Backend, tokenizer: Any) -> int:
        """T5 tokens per prompt: the pipeline's default, at most the tokenizer's own maximum."""
        return min(self.text_sequence_length, int(getattr(tokenizer, "model_max_length", None) or self.text_sequence_length))

    def image_grid(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """The token grid (h, w) of a latent: one token per ``patch_size``² latent pixels."""
        return latent_hw[0] // self.patch_size, latent_hw[1] // self.patch_size

    def attention_layers(self, denoiser: torch.nn.Module) -> list[torch.nn.Module]:
        return self.capture_class().layers(denoiser)

    def capture(self, denoiser: torch.nn.Module, positions: Sequence[int], store: FeatureStore) -> Any:
        return self.capture_class()(denoiser, positions, store)

    def capture_class(self) -> type:
        raise NotImplementedError

    def adain(self, latents: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """AdaIN per *packed* channel: each of the 2×2 patch's 16·4 (channel, dy, dx) values matched
        over the tokens, unbiased std, eps 1e-6 on the latent's std (the paper's FLUX code)."""
        from adcli.engine.archs.flow import adain_tokens, pack_latents, unpack_latents

        grid = self.image_grid(tuple(latents.shape[-2:]))
        return unpack_latents(adain_tokens(pack_latents(latents), pack_latents(reference)), grid)
