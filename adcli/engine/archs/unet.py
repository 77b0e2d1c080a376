"""What Stable Diffusion 1.5 and SDXL share: a ``UNet2DConditionModel`` denoised by DDIM, CLIP text
encoders, a 4-channel VAE, ``attn1`` self-attention capture, circular padding for seamless tiles.

:class:`UNetArchitecture` holds all of it; ``sd15.py`` and ``sdxl.py`` say only what differs
(detection, text encoders, SDXL's size conditioning, defaults, preview colours). Module-level code
imports neither torch nor diffusers (the probe half must start without them); the run half
imports them in its methods.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from adcli.engine.archs.base import Architecture, Components
from adcli.errors import ModelLoadError, setting

if TYPE_CHECKING:
    import torch

    from adcli.engine.attention import FeatureStore
    from adcli.engine.backend import Backend, Conditioning
    from adcli.engine.controlnet import Control
    from adcli.engine.loras import LoraInfo
    from adcli.engine.prediction import Prediction
    from adcli.engine.schedule import Schedule

_LDM_SELF_ATTENTION = re.compile(r"model\.diffusion_model\.(.+)\.attn1\.to_q\.weight")
_LDM_CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
_LATENT_CHANNELS = 4


def _per_block(value, blocks: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * blocks


def _transformers(depth, layers: int) -> int:
    """Transformer blocks (one attn1 each) in a block of ``layers`` layers: ``depth`` each, or a per-layer list."""
    return sum(depth) if isinstance(depth, (list, tuple)) else depth * layers


def count_self_attention(unet_config: dict) -> int:
    """Self-attention (attn1) layers of a diffusers ``UNet2DConditionModel`` with this config,
    counted the way its constructor builds them (down blocks, mid block, up blocks)."""
    down, up = unet_config["down_block_types"], unet_config["up_block_types"]
    layers = _per_block(unet_config.get("layers_per_block", 2), len(down))
    depths = _per_block(unet_config.get("transformer_layers_per_block", 1), len(down))
    up_depths = unet_config.get("reverse_transformer_layers_per_block") or list(reversed(depths))
    total = sum(_transformers(depths[i], layers[i]) for i, kind in enumerate(down) if "CrossAttn" in kind)
    if (unet_config.get("mid_block_type") or "UNetMidBlock2DCrossAttn") == "UNetMidBlock2DCrossAttn":
        total += _transformers(depths[-1], 1)
    up_layers = list(reversed(layers))
    total += sum(_transformers(up_depths[i], up_layers[i] + 1) for i, kind in enumerate(up) if "CrossAttn" in kind)
    return total


def present(model_index: dict, component: str) -> bool:
    """Whether a ``model_index.json`` lists ``component`` with a class (``[null, null]`` is absent)."""
    entry = model_index.get(component)
    return bool(entry) and not (isinstance(entry, (list, tuple)) and all(part is None for part in entry))


class UNetArchitecture(Architecture):
    """A Stable Diffusion UNet family; subclasses set the names and what differs."""

    denoiser_name = "unet"
    circular_padding = True
    # "transformers" class names of the text encoders, in the order of ``text_parts``
    text_encoder_classes: tuple[str, ...] = ()
    # the CLIP layer a prompt is read from: the last (SD1.5) or the penultimate (SDXL)
    penultimate_hidden_state = False
    lora_loader_class = ""  # diffusers' LoRA loader mixin for the family

    # -- probe ----------------------------------------------------------------------------------
    def check_checkpoint(self, path: Any, header: dict) -> None:
        conv_in = header.get(_LDM_CONV_IN, {}).get("shape", [0, _LATENT_CHANNELS])
        if conv_in[1] != _LATENT_CHANNELS:
            raise ModelLoadError(
                f"{path} has a UNet with {conv_in[1]} input channels (inpainting?); only {_LATENT_CHANNELS} is supported"
            )

    def count_layers(self, denoiser_config: dict) -> int:
        return count_self_attention(denoiser_config)

    def count_checkpoint_layers(self, keys: Collection[str]) -> int:
        return len({m[1] for key in keys if (m := _LDM_SELF_ATTENTION.fullmatch(key))})

    # -- loading --------------------------------------------------------------------------------
    def _text_encoder_class(self, index: int):
        import transformers

        return getattr(transformers, self.text_encoder_classes[index])

    def load_pretrained(self, source: str, dtype: torch.dtype, local_only: bool, quantize: str | None = None) -> Components:
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTokenizer

        kwargs = {"local_files_only": local_only}
        components = {
            "unet": UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, **kwargs),
            "vae": AutoencoderKL.from_pretrained(source, subfolder="vae", **kwargs),
            "scheduler": DDIMScheduler.from_pretrained(source, subfolder="scheduler", **kwargs),
        }
        for index, (tokenizer, encoder) in enumerate(self.text_parts):
            components[tokenizer] = CLIPTokenizer.from_pretrained(source, subfolder=tokenizer, **kwargs)
            components[encoder] = self._text_encoder_class(index).from_pretrained(
                source, subfolder=encoder, torch_dtype=dtype, **kwargs
            )
        return components

    def _pipeline_class(self):
        import diffusers

        return getattr(diffusers, self.pipeline_class)

    def load_single_file(
        self, path: Any, config: str | None, dtype: torch.dtype, local_only: bool, quantize: str | None = None,
    ) -> Components:
        from adcli.engine.probe import detect_arch
        from adcli.engine.single_file import load_single_file_components

        found = detect_arch(path)
        if found != self.name:
            raise ModelLoadError(f"{path} is an {found} checkpoint, not {self.name}")
        names = [self.denoiser_name, "vae"] + [name for pair in self.text_parts for name in reversed(pair)]
        return load_single_file_components(
            path, pipeline_class=self._pipeline_class(), names=names, extra=self._pipeline_extras(),
            config=config, dtype=dtype, local_files_only=local_only,
        )

    def _pipeline_extras(self) -> dict:
        """Optional pipeline parts AD does not use, set to None when building the pipeline."""
        return {}

    def pipeline(self, components: Components) -> Any:
        return self._pipeline_class()(**components, **self._pipeline_extras())

    def components_of_pipe(self, pipe: Any) -> Components:
        names = [self.denoiser_name, "vae", "scheduler"] + [name for pair in self.text_parts for name in pair]
        missing = [name for name in names if getattr(pipe, name, None) is None]
        if missing:
            raise ModelLoadError(
                f"this {self.title} pipeline has no {missing[0]}: AD needs its {', '.join(names[:2])} and every "
                f"text encoder; pass a complete {self.pipeline_class}"
            )
        return {name: getattr(pipe, name) for name in names}

    def apply_loras(self, backend: Backend, loras: Sequence[tuple[str, float]]) -> tuple[LoraInfo, ...]:
        import diffusers.loaders

        from adcli.engine.loras import apply_loras

        loader = getattr(diffusers.loaders, self.lora_loader_class)
        return apply_loras(backend, loras, loader, {"unet_config": backend.denoiser.config})

    def load_controlnet(self, backend: Backend, source: str, local_only: bool) -> torch.nn.Module:
        from diffusers import ControlNetModel

        from adcli.engine import archs
        from adcli.engine.archs.tiny_unets import build_tiny_controlnet
        from adcli.engine.controlnet import TINY, load_pretrained_controlnet, place_controlnet

        unet = backend.denoiser
        if source == TINY:
            if archs.tiny_model_arch(backend.source) is None:
                tiny = " or ".join(archs.tiny_models())
                raise ModelLoadError(f"{setting('controlnet')} tiny is a random test model for the tiny models ({tiny}) only")
            controlnet = build_tiny_controlnet(unet)
        else:
            controlnet = load_pretrained_controlnet(ControlNetModel, source, backend.dtype, local_only)
        wanted, got = unet.config.cross_attention_dim, controlnet.config.cross_attention_dim
        if wanted != got:
            raise ModelLoadError(
                f"ControlNet {source} was made for another model architecture (text width {got}, the model's "
                f"is {wanted}): use a ControlNet made for {self.title}"
            )
        return place_controlnet(controlnet, backend.device, backend.dtype)

    def full_size_components(self) -> Components:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig

        from adcli.engine.archs.tiny_unets import tiny_scheduler
        from adcli.engine.tiny import MAX_TOKENS, tiny_tokenizer

        configs = self.published_configs
        components: Components = {"unet": UNet2DConditionModel(**configs["unet"]), "vae": AutoencoderKL(**configs["vae"])}
        components["scheduler"] = tiny_scheduler()  # the released models' schedule (scaled linear, leading)
        for index, ((tokenizer, encoder), widths) in enumerate(zip(self.text_parts, configs["text_encoders"], strict=True)):
            # Token ids from the tiny tokenizer: 0 starts, 1 ends and pads (every prompt is padded to 77).
            text = CLIPTextConfig(vocab_size=49408, max_position_embeddings=MAX_TOKENS, bos_token_id=0,
                                  eos_token_id=1, pad_token_id=1, **widths)
            components[encoder] = self._text_encoder_class(index)(text)
            components[tokenizer] = tiny_tokenizer()
        return components

    # -- running --------------------------------------------------------------------------------
    def native_size(self, backend: Backend) -> tuple[int, int]:
        sample = backend.denoiser.config.sample_size
        height, width = (sample, sample) if isinstance(sample, int) else sample
        return width * backend.vae_scale_factor, height * backend.vae_scale_factor

    def prediction(self, backend: Backend) -> Prediction:
        from adcli.engine.prediction import Epsilon, VPrediction

        kind = backend.scheduler_config.get("prediction_type") or "epsilon"
        if kind == "epsilon":
            return Epsilon()
        if kind == "v_prediction":
            return VPrediction()
        raise ModelLoadError(f"model {backend.source} predicts {kind!r}; adcli runs epsilon and v-prediction UNets")

    def schedule(self, backend: Backend, steps: int, latent_hw: tuple[int, int] | None = None) -> Schedule:
        """DDIM's timesteps for ``steps`` steps (the model's spacing and offset), each with its
        σ = √((1−ᾱ)/ᾱ), then the final point: timestep 0 at the scheduler's final ᾱ."""
        import torch
        from diffusers import DDIMScheduler

        from adcli.engine.schedule import Schedule

        scheduler = DDIMScheduler.from_config(backend.scheduler_config)
        scheduler.set_timesteps(steps)
        timesteps = torch.cat([scheduler.timesteps, torch.zeros(1, dtype=scheduler.timesteps.dtype)])
        alphas = torch.cat([scheduler.alphas_cumprod[scheduler.timesteps], scheduler.final_alpha_cumprod.reshape(1)])
        alphas = alphas.double()
        sigmas = ((1 - alphas) / alphas).sqrt()
        return Schedule(sigmas, timesteps.to(backend.device))

    def encode_prompts(self, backend: Backend, prompts: list[str]) -> Conditioning:
        import torch

        from adcli.engine.backend import Conditioning

        hidden, pooled = [], None
        for tokenizer, encoder in zip(backend.tokenizers, backend.text_encoders, strict=True):
            ids = tokenizer(
                prompts, padding="max_length", max_length=tokenizer.model_max_length,
                truncation=True, return_tensors="pt",
            ).input_ids.to(encoder.device)
            if not self.penultimate_hidden_state:
                hidden.append(encoder(ids).last_hidden_state)
                continue
            output = encoder(ids, output_hidden_states=True)
            hidden.append(output.hidden_states[-2])
            if getattr(output, "text_embeds", None) is not None:  # the projection encoder's pooled output
                pooled = output.text_embeds
        tensors = {"embeds": torch.cat(hidden, dim=-1).to(backend.device, backend.dtype)}  # (B, 77, D)
        if pooled is not None:
            tensors["pooled"] = pooled.to(backend.device, backend.dtype)  # (B, D2)
        return Conditioning(tensors)

    def model_inputs(
        self, backend: Backend, conditioning: Conditioning, batch: int, latent_hw: tuple[int, int],
        guidance: float | None = None,
    ) -> dict:
        """``encoder_hidden_states``, and what a subclass adds (:meth:`added_conditions`)."""
        conditioning = conditioning.repeat(batch)
        inputs = {"encoder_hidden_states": conditioning["embeds"]}
        added = self.added_conditions(backend, conditioning, batch, latent_hw)
        if added:
            inputs["added_cond_kwargs"] = added
        return inputs

    def added_conditions(self, backend: Backend, conditioning: Conditioning, batch: int, latent_hw: tuple[int, int]) -> dict:
        """The UNet's ``added_cond_kwargs`` (none for SD1.5)."""
        return {}

    def predict(
        self, backend: Backend, latents: torch.Tensor, timestep: torch.Tensor, inputs: dict,
        control: Control | None = None,
    ) -> torch.Tensor:
        latents = latents.to(backend.dtype)
        if control is not None:
            image = control.image.to(backend.device, backend.dtype).expand(latents.shape[0], -1, -1, -1)
            down, mid = control.model(
                latents, timestep, controlnet_cond=image, conditioning_scale=control.scale, return_dict=False, **inputs
            )
            inputs = inputs | {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        return backend.denoiser(latents, timestep, return_dict=False, **inputs)[0]

    def attention_layers(self, denoiser: torch.nn.Module) -> list[torch.nn.Module]:
        from adcli.engine.archs.unet_attention import self_attention_layers

        return self_attention_layers(denoiser)

    def capture(self, denoiser: torch.nn.Module, positions: Sequence[int], store: FeatureStore) -> Any:
        from adcli.engine.archs.unet_attention import Capture

        return Capture(denoiser, positions, store)

    def circular_modules(self, backend: Backend) -> list[torch.nn.Module]:
        return [backend.denoiser]
