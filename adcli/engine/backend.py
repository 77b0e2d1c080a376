"""A loaded model, whatever its architecture: its parts, where they run, and the conversions
between pixels, latents and denoiser inputs that every task needs.

What differs between model families is asked of ``backend.arch`` (an
:class:`~adcli.engine.archs.base.Architecture`); this module holds what they share.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from adcli.errors import InputError, setting

if TYPE_CHECKING:
    from adcli.engine.archs.base import Architecture
    from adcli.engine.prediction import Prediction
    from adcli.engine.schedule import Schedule


@dataclass(frozen=True)
class Conditioning:
    """Encoded prompts as named batch-first tensors, e.g. SD1.5 ``{"embeds": (B, 77, D)}``, SDXL
    adding ``"pooled": (B, D2)``. Which names exist is the architecture's business; the samplers
    only repeat and join them."""

    tensors: dict[str, torch.Tensor]

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def get(self, name: str) -> torch.Tensor | None:
        return self.tensors.get(name)

    @property
    def batch(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def repeat(self, batch: int) -> Conditioning:
        """One prompt for each of ``batch`` latents: a batch of one expands (no copy); a full batch stays."""
        if self.batch == batch:
            return self
        return Conditioning({name: x.expand(batch, *x.shape[1:]) for name, x in self.tensors.items()})

    @staticmethod
    def cat(parts: Sequence[Conditioning]) -> Conditioning:
        """Join batches item-wise (e.g. the negative and the positive prompt for guidance)."""
        return Conditioning({name: torch.cat([p[name] for p in parts]) for name in parts[0].tensors})


@dataclass
class Backend:
    """A loaded model for AD. ``denoiser`` is the UNet or transformer, ``scheduler_config`` the
    model's noise-schedule configuration (a diffusers scheduler config)."""

    arch: Architecture
    denoiser: torch.nn.Module
    vae: torch.nn.Module
    scheduler_config: dict
    tokenizers: list
    text_encoders: list
    device: torch.device
    dtype: torch.dtype
    source: str
    # low_vram: the VAE lives on the CPU and visits ``device`` only to encode or decode; the text
    # encoders likewise visit it only to encode a prompt (once per prompt: the results are cached).
    vae_offloaded: bool = False
    encoders_offloaded: bool = False
    # The memory plan for a small GPU (:mod:`adcli.engine.memory`): the text encoders encode on the CPU
    # (they do not fit the GPU), or the denoiser waits on the CPU while they encode on the GPU.
    encode_on_cpu: bool = False
    denoiser_aside_to_encode: bool = False
    memory_note: str | None = None  # what the memory plan chose, in one line (None: no plan)
    _prompt_cache: dict = field(default_factory=dict, repr=False)
    controlnet: torch.nn.Module | None = None
    # LoRAs fused into the weights at load time (see :mod:`adcli.engine.loras`), for the metadata.
    loras: tuple = ()
    # The modules belong to a user's diffusers pipeline (:func:`adcli.engine.pipes.backend_from_pipe`):
    # never change them for good; run inside :func:`adcli.engine.pipes.borrowed`.
    shared: bool = False
    _prediction: Any = field(default=None, repr=False)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (8 for the UNets, 16 for 2×2-patch transformers)."""
        return self.vae_scale_factor * self.arch.patch_size

    @property
    def preset_key(self) -> str:
        """The ``by_arch`` key of this model: its family's name, or its variant's (``flux-schnell``)."""
        return self.arch.preset_key(self.arch.variant_of(dict(self.denoiser.config)))

    @property
    def prediction(self) -> Prediction:
        """What the denoiser predicts and how latents are noised (from the model's configs)."""
        if self._prediction is None:
            self._prediction = self.arch.prediction(self)
        return self._prediction

    def schedule(self, steps: int, latent_hw: tuple[int, int]) -> Schedule:
        """The model's sampling schedule for ``steps`` steps (timesteps on the model's device)."""
        return self.arch.schedule(self, steps, latent_hw)

    def native_size(self) -> tuple[int, int]:
        """(width, height) the model was trained at: 512² SD1.5, 1024² SDXL."""
        return self.arch.native_size(self)

    def check_size(self, size: tuple[int, int]) -> None:
        """A (width, height) the model can work at: sides multiples of :attr:`size_multiple`."""
        self.arch.check_size(size)

    def latent_noise(self, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        """Gaussian latents (1, C, H/8, W/8) for an image of ``size`` = (width, height), drawn on the
        CPU from ``generator`` so that a seed gives the same start on every device."""
        self.check_size(size)
        width, height = size
        factor = self.vae_scale_factor
        shape = (1, self.vae.config.latent_channels, height // factor, width // factor)
        return torch.randn(shape, generator=generator).to(self.device)

    @property
    def vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """Encode prompts the way the architecture's pipeline does; results are cached."""
        key = tuple(prompts)
        if key not in self._prompt_cache:
            with self._encoders_placed():
                self._prompt_cache[key] = self.arch.encode_prompts(self, list(prompts))
        return self._prompt_cache[key]

    @contextmanager
    def _encoders_placed(self) -> Iterator[None]:
        """The text encoders where they encode: on the device (visiting it when offloaded; the denoiser
        waiting on the CPU meanwhile when both do not fit), or on the CPU when they do not fit the GPU."""
        if self.encode_on_cpu or self.device.type == "cpu":
            yield
            return
        aside = self.denoiser_aside_to_encode and self.encoders_offloaded
        if aside:
            self.denoiser.to("cpu")
            torch.cuda.empty_cache()
        try:
            with self._on_device(self.text_encoders, self.encoders_offloaded):
                yield
        finally:
            if aside:
                self.denoiser.to(self.device)

    def model_inputs(
        self, conditioning: Conditioning, batch: int, latent_hw: tuple[int, int], guidance: float | None = None
    ) -> dict:
        """Keyword inputs of :meth:`predict` (see :meth:`Architecture.model_inputs`)."""
        return self.arch.model_inputs(self, conditioning, batch, latent_hw, guidance)

    def predict(self, latents: torch.Tensor, timestep: torch.Tensor, inputs: dict, control: Any = None) -> torch.Tensor:
        """One denoiser pass → its raw prediction (see :meth:`Architecture.predict`)."""
        return self.arch.predict(self, latents, timestep, inputs, control)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1], (B, 3, H, W) → scaled latents (B, C, H/8, W/8), fp32.

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

    def _vae_on_device(self):
        return self._on_device([self.vae], self.vae_offloaded)

    @contextmanager
    def _on_device(self, modules: Sequence[torch.nn.Module], offloaded: bool) -> Iterator[None]:
        """``modules`` on the model's device for the block, back on the CPU after it when ``offloaded``."""
        if not offloaded or self.device.type == "cpu":
            yield
            return
        for module in modules:
            module.to(self.device)
        try:
            yield
        finally:
            for module in modules:
                module.to("cpu")


def _place(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move a module, casting only when its dtype differs (a no-op cast makes diffusers warn) and never
    a quantized one (GGUF, int8…: its compute dtype was set when it loaded)."""
    current = next(module.parameters()).dtype
    quantized = getattr(module, "is_quantized", False) or getattr(module, "hf_quantizer", None) is not None
    module.to(device) if current == dtype or quantized else module.to(device, dtype)


# What :func:`place_backend` may leave on the CPU.
PARTS = ("denoiser", "vae", "text_encoders")


def place_backend(backend: Backend, on_cpu: Sequence[str] = ()) -> None:
    """Freeze the backend's modules in eval mode, the denoiser and text encoders in its dtype on its
    device and the VAE in fp32 (SD VAEs overflow in fp16; it is a small share of the work). The
    ``on_cpu`` parts (of :data:`PARTS`) get their dtype but stay on the CPU (a small GPU's memory plan)."""
    device, dtype = backend.device, backend.dtype
    parts = [("denoiser", backend.denoiser, dtype), ("vae", backend.vae, torch.float32)]
    parts += [("text_encoders", encoder, dtype) for encoder in backend.text_encoders]
    for part, module, wanted in parts:
        module.eval().requires_grad_(False)
        _place(module, torch.device("cpu") if part in on_cpu else device, wanted)


def backend_from_components(
    arch: Architecture, components: dict, *, device: torch.device, dtype: torch.dtype, source: str,
    vae: torch.nn.Module | None = None, place: bool = True, shared: bool = False,
) -> Backend:
    """A Backend of ``arch`` over its pipeline ``components`` (``vae`` replaces theirs), with ``place``
    placed by :func:`place_backend` (left where they are otherwise)."""
    denoiser = components[arch.denoiser_name]
    vae = vae if vae is not None else components["vae"]
    tokenizers = [components[t] for t, _ in arch.text_parts if components.get(t) is not None]
    encoders = [components[e] for _, e in arch.text_parts if components.get(e) is not None]
    scheduler = components.get("scheduler")
    backend = Backend(
        arch=arch, denoiser=denoiser, vae=vae, scheduler_config=dict(scheduler.config) if scheduler is not None else {},
        tokenizers=tokenizers, text_encoders=encoders, device=device, dtype=dtype, source=source, shared=shared,
    )
    if place:
        place_backend(backend)
    return backend
