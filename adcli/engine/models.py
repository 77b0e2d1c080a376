"""Model loading: one :class:`Backend` for SD1.5 and SDXL, whatever the source.

Sources: ``tiny`` / ``tiny-sdxl`` (built in code), a local diffusers folder, a single
``.safetensors`` checkpoint, or a Hugging Face hub id (cache and ``HF_HUB_OFFLINE`` honoured).
"""

from __future__ import annotations

import functools
import http.client
import os
import re
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from adcli.engine.controlnet import load_controlnet
from adcli.engine.quiet import quiet_loading
from adcli.engine.loras import apply_loras
from adcli.engine.tiny import build_tiny_components
from adcli.errors import ModelLoadError

from adcli.engine.defaults import TINY_MODELS
_SINGLE_FILE_SUFFIXES = (".safetensors",)


@dataclass
class Conditioning:
    """Text conditioning for a batch: ``embeds`` (B, 77, D); SDXL adds ``pooled`` (B, D2)."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    def repeat(self, batch: int) -> Conditioning:
        if self.embeds.shape[0] == batch:
            return self
        pooled = None if self.pooled is None else self.pooled.expand(batch, -1)
        return Conditioning(self.embeds.expand(batch, -1, -1), pooled)

    @staticmethod
    def cat(parts: list[Conditioning]) -> Conditioning:
        pooled = None if parts[0].pooled is None else torch.cat([p.pooled for p in parts])
        return Conditioning(torch.cat([p.embeds for p in parts]), pooled)


@dataclass
class Backend:
    """A loaded Stable Diffusion model: its parts, where they run, and the conversions between
    pixels, latents and UNet inputs that every task needs."""

    arch: str
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler: DDIMScheduler
    tokenizers: list
    text_encoders: list
    device: torch.device
    dtype: torch.dtype
    source: str
    # --low-vram: the VAE lives on the CPU and visits ``device`` only to encode or decode.
    vae_offloaded: bool = False
    _prompt_cache: dict = field(default_factory=dict, repr=False)
    controlnet: ControlNetModel | None = None
    # LoRAs fused into the weights at load time (see :mod:`adcli.engine.loras`), for the metadata.
    loras: tuple = ()
    # The modules belong to a user's diffusers pipeline (:func:`adcli.engine.pipes.backend_from_pipe`):
    # never change them for good; run inside :func:`adcli.engine.pipes.borrowed`.
    shared: bool = False

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def latent_noise(self, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        """Gaussian latents (1, C, H/8, W/8) for an image of ``size`` = (width, height), drawn on the
        CPU from ``generator`` so that a seed gives the same start on every device."""
        width, height = size
        shape = (1, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        return torch.randn(shape, generator=generator).to(self.device)

    @property
    def vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """Encode prompts the way each architecture's pipeline does; results are cached."""
        key = tuple(prompts)
        if key in self._prompt_cache:
            return self._prompt_cache[key]
        hidden, pooled = [], None
        for tokenizer, encoder in zip(self.tokenizers, self.text_encoders, strict=True):
            ids = tokenizer(
                prompts, padding="max_length", max_length=tokenizer.model_max_length,
                truncation=True, return_tensors="pt",
            ).input_ids.to(encoder.device)
            if self.arch == "sd15":
                hidden.append(encoder(ids).last_hidden_state)
            else:
                output = encoder(ids, output_hidden_states=True)
                hidden.append(output.hidden_states[-2])
                if isinstance(encoder, CLIPTextModelWithProjection):
                    pooled = output.text_embeds
        embeds = torch.cat(hidden, dim=-1).to(self.device, self.dtype)
        result = Conditioning(embeds, None if pooled is None else pooled.to(self.device, self.dtype))
        self._prompt_cache[key] = result
        return result

    def unet_inputs(self, conditioning: Conditioning, batch: int, latent_hw: tuple[int, int]) -> dict:
        """Keyword arguments for ``unet(latents, t, **inputs)``: text, and SDXL's added conditions."""
        conditioning = conditioning.repeat(batch)
        inputs = {"encoder_hidden_states": conditioning.embeds}
        if self.arch == "sdxl":
            height, width = (s * self.vae_scale_factor for s in latent_hw)
            time_ids = torch.tensor([height, width, 0, 0, height, width], device=self.device, dtype=self.dtype)
            inputs["added_cond_kwargs"] = {
                "text_embeds": conditioning.pooled,
                "time_ids": time_ids.expand(batch, -1),
            }
        return inputs

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1], (B, 3, H, W) → scaled latents (B, 4, H/8, W/8), fp32.

        Uses the posterior mean, not a sample, so that a run is deterministic.
        """
        pixels = pixels.to(self.device, self.vae_dtype)
        with self._vae_on_device():
            latents = self.vae.encode(pixels).latent_dist.mean
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return ((latents - shift) * self.vae.config.scaling_factor).float()

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents → pixels in [0, 1], (B, 3, H, W), fp32 on the CPU."""
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        latents = latents / self.vae.config.scaling_factor + shift
        with self._vae_on_device():
            pixels = self.vae.decode(latents.to(self.device, self.vae_dtype)).sample
        return ((pixels.float() + 1) / 2).clamp(0, 1).cpu()

    @contextmanager
    def _vae_on_device(self) -> Iterator[None]:
        if not self.vae_offloaded:
            yield
            return
        self.vae.to(self.device)
        try:
            yield
        finally:
            self.vae.to("cpu")


HUB_TIMEOUT_S = 3.0
_HUB_ID = re.compile(r"[\w][\w.-]*/[\w][\w.-]*")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def is_hub_id(text: str) -> bool:
    """``owner/name`` as the hub spells ids; anything else (``nope/``, ``./x``, ``a/b/c``) is meant as a local path."""
    return bool(_HUB_ID.fullmatch(text)) and not text.endswith(_SINGLE_FILE_SUFFIXES)


@functools.lru_cache(maxsize=None)
def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """One HTTP request to the hub (``HF_ENDPOINT``; proxies from the environment), ``timeout`` in all,
    DNS included. Asked once per process, before a hub download is tried: with no network, loading
    goes to the cache at once instead of through the hub client's retries (~28 s)."""
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    answer: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout):
                answer.append(True)
        except urllib.error.HTTPError:  # the hub answered, if not with 200
            answer.append(True)
        except (OSError, ValueError, http.client.HTTPException):
            answer.append(False)

    thread = threading.Thread(target=probe, name="adcli-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)  # a hanging DNS lookup is left behind: the answer is "unreachable"
    return bool(answer and answer[0])


def hub_unavailable() -> bool:
    """Loading must use the local Hugging Face cache only: offline mode, or no way to the hub."""
    return hub_offline() or not hub_reachable()


def _hub_hint(name: str, option: str = "--model") -> str:
    if hub_offline():
        why = "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache"
    elif not hub_reachable():
        why = "the Hugging Face hub cannot be reached (no network) and it is not in the cache"
    else:
        why = "it is not on the Hugging Face hub under that name (or is gated) and not in the cache"
    return (
        f"model {name!r} could not be loaded: {why}; download it once with `hf download {name}` on a machine "
        f"with network, or pass {option} /path/to/a/local/diffusers/folder or a .safetensors file"
    )


def _load_pretrained(source: str, dtype: torch.dtype, local_only: bool) -> dict:
    """Load every component from a diffusers folder or hub id."""
    from diffusers import DiffusionPipeline

    kwargs = {"local_files_only": local_only}
    with quiet_loading():
        index = DiffusionPipeline.load_config(source, **kwargs)
        arch = "sdxl" if index.get("text_encoder_2") else "sd15"
        components = {
            "unet": UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, **kwargs),
            "vae": AutoencoderKL.from_pretrained(source, subfolder="vae", **kwargs),
            "scheduler": DDIMScheduler.from_pretrained(source, subfolder="scheduler", **kwargs),
            "tokenizer": CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kwargs),
            "text_encoder": CLIPTextModel.from_pretrained(source, subfolder="text_encoder", torch_dtype=dtype, **kwargs),
        }
        if arch == "sdxl":
            components["tokenizer_2"] = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer_2", **kwargs)
            components["text_encoder_2"] = CLIPTextModelWithProjection.from_pretrained(
                source, subfolder="text_encoder_2", torch_dtype=dtype, **kwargs
            )
    return components


def _load_components(model: str, model_config: str | None, dtype: torch.dtype) -> tuple[str, dict]:
    if model in TINY_MODELS:
        arch = TINY_MODELS[model]
        return arch, build_tiny_components(arch)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"model folder {path} is not a diffusers model (no model_index.json): "
                f"pass a diffusers folder, a .safetensors checkpoint or a hub id"
            )
        try:
            components = _load_pretrained(str(path), dtype, local_only=True)
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(f"model folder {path} could not be read ({_first_line(error)})") from None
        return ("sdxl" if "text_encoder_2" in components else "sd15"), components
    if path.is_file() or model.endswith(_SINGLE_FILE_SUFFIXES):
        if not path.is_file():
            raise ModelLoadError(f"model file {path} does not exist: check the path given to --model")
        from adcli.engine.single_file import detect_arch, load_single_file_components

        arch = detect_arch(path)
        components = load_single_file_components(
            path, arch=arch, config=model_config, dtype=dtype, local_files_only=_configs_local(model_config)
        )
        return arch, components
    if not is_hub_id(model):
        what = "folder" if model.endswith(("/", os.sep)) else "file or folder"
        raise ModelLoadError(
            f"model {what} {model} does not exist (and it is not a hub id like owner/name): "
            f"check the path given to --model"
        )
    try:
        components = _load_pretrained(model, dtype, local_only=hub_unavailable())
    except (OSError, ValueError):
        raise ModelLoadError(_hub_hint(model)) from None
    return ("sdxl" if "text_encoder_2" in components else "sd15"), components


def _configs_local(config: str | None) -> bool:
    """A single-file load reads its configs from ``config`` (a folder: local) or the hub."""
    return (config is not None and Path(config).expanduser().is_dir()) or hub_unavailable()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _single_file_vae(path: Path, model_config: str | None, base: AutoencoderKL | None) -> AutoencoderKL:
    """A one-file VAE takes its architecture from --model-config, else from the loaded model's VAE."""
    from adcli.engine.single_file import load_single_file_vae

    if model_config is not None or base is None:
        return load_single_file_vae(path, config=model_config, dtype=torch.float32, local_files_only=_configs_local(model_config))
    with tempfile.TemporaryDirectory(prefix="adcli-vae-config-") as folder:
        base.save_config(folder)
        return load_single_file_vae(path, config=folder, dtype=torch.float32, local_files_only=True)


def load_vae(vae: str, model_config: str | None = None, base: AutoencoderKL | None = None) -> AutoencoderKL:
    """A separate VAE: a diffusers folder (e.g. from ``adcli finetune-vae``), a hub id or a .safetensors file."""
    path = Path(vae).expanduser()
    try:
        if path.is_dir():
            sub = "vae" if (path / "vae" / "config.json").is_file() else None
            if sub is None and not (path / "config.json").is_file():
                raise ModelLoadError(f"VAE folder {path} has no config.json: pass a diffusers VAE folder")
            return AutoencoderKL.from_pretrained(str(path), subfolder=sub, local_files_only=True)
        if path.is_file():
            return _single_file_vae(path, model_config, base)
        if not is_hub_id(vae):
            what = "folder" if vae.endswith(("/", os.sep)) else "file or folder"
            raise ModelLoadError(f"VAE {what} {vae} does not exist: check the path given to --vae")
        with quiet_loading():
            return AutoencoderKL.from_pretrained(vae, local_files_only=hub_unavailable())
    except ModelLoadError:
        raise
    except (OSError, ValueError) as error:
        if path.exists():
            raise ModelLoadError(f"VAE {path} could not be read ({_first_line(error)})") from None
        raise ModelLoadError(_hub_hint(vae, "--vae")) from None


def load_model_vae(model: str, vae: str | None = None, model_config: str | None = None) -> AutoencoderKL:
    """Only the VAE, in fp32: ``vae`` when given, else ``model``'s (for ``adcli finetune-vae``)."""
    if vae:
        return load_vae(vae, model_config).float()
    path = Path(model).expanduser()
    if path.is_dir() and (path / "vae" / "config.json").is_file():
        return load_vae(str(path), model_config).float()
    if model in TINY_MODELS or path.exists() or not is_hub_id(model):
        return _load_components(model, model_config, torch.float32)[1]["vae"].float()
    try:
        with quiet_loading():
            return AutoencoderKL.from_pretrained(model, subfolder="vae", local_files_only=hub_unavailable()).float()
    except (OSError, ValueError):
        raise ModelLoadError(_hub_hint(model)) from None


def _place(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move a module, casting only when its dtype differs (a no-op cast makes diffusers warn)."""
    current = next(module.parameters()).dtype
    module.to(device) if current == dtype else module.to(device, dtype)


def load_backend(
    model: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    vae: str | None = None,
    model_config: str | None = None,
    controlnet: str | None = None,
    arch: str | None = None,
    loras: Sequence[tuple[str, float]] = (),
) -> Backend:
    """Load a model for AD: weights frozen, in eval mode, UNet and text encoders in ``dtype``.

    The VAE stays in fp32 (SD VAEs overflow in fp16 and it is a small share of the work).
    ``arch`` (sd15/sdxl), when given, must be the loaded model's architecture; ``controlnet``
    is loaded alongside (see :mod:`adcli.engine.controlnet`). ``loras`` — ``(path_or_hub_id, scale)``
    pairs — are fused into the weights in order (see :func:`adcli.engine.loras.apply_loras`); the
    backend's ``loras`` records their names, scales and SHA-256.
    """
    loaded_arch, components = _load_components(model, model_config, dtype)
    if arch not in (None, "auto") and arch != loaded_arch:
        raise ModelLoadError(
            f"--arch {arch} was asked for, but model {model} is {loaded_arch}: "
            f"pass a matching --model, or drop --arch"
        )
    arch = loaded_arch
    vae_model = load_vae(vae, model_config, base=components["vae"]) if vae else components["vae"]
    tokenizers = [components["tokenizer"]] + ([components["tokenizer_2"]] if arch == "sdxl" else [])
    encoders = [components["text_encoder"]] + ([components["text_encoder_2"]] if arch == "sdxl" else [])
    unet = components["unet"]
    for module, wanted in [(unet, dtype), (vae_model, torch.float32)] + [(e, dtype) for e in encoders]:
        module.eval().requires_grad_(False)
        _place(module, device, wanted)
    scheduler = components["scheduler"]
    if not isinstance(scheduler, DDIMScheduler):
        scheduler = DDIMScheduler.from_config(scheduler.config)
    backend = Backend(
        arch=arch, unet=unet, vae=vae_model, scheduler=scheduler, tokenizers=tokenizers,
        text_encoders=encoders, device=device, dtype=dtype, source=model,
    )
    if loras:
        backend.loras = apply_loras(backend, loras)
    if controlnet:
        backend.controlnet = load_controlnet(
            controlnet, unet, device=device, dtype=dtype, tiny_model=model in TINY_MODELS,
            local_only=controlnet != "tiny" and not Path(controlnet).expanduser().is_dir() and hub_unavailable(),
        )
    return backend
