"""The interface every architecture implements: what differs between model families, in one class.

The rest of the engine talks to a loaded model only through its :class:`~adcli.engine.backend.Backend`
and the backend's ``arch`` (an :class:`Architecture`); nothing outside ``engine/archs/`` knows a
model family by name. Adding one is a module with a subclass plus one line in the registry
(``engine/archs/__init__.py``); the README's "Architectures" section says what it must keep.

Two halves, with different import costs:

- the *probe* half (detection, layer counting, names, geometry, preview colours) reads only
  JSON configs and safetensors headers. ``adcli --help``, ``--version``, ``info`` and preflight
  checks use it, so an architecture module imports neither torch nor diffusers at module level;
- the *run* half (loading, prompt encoding, the denoiser call, schedules, capture) imports them
  inside its methods: they are loaded by the time a model is.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from adcli.errors import InputError, setting

if TYPE_CHECKING:
    import torch

    from adcli.engine.attention import FeatureStore
    from adcli.engine.backend import Backend, Conditioning
    from adcli.engine.controlnet import Control
    from adcli.engine.loras import LoraInfo
    from adcli.engine.prediction import Prediction
    from adcli.engine.schedule import Schedule

# A model's parts as its diffusers pipeline names them ("unet", "vae", "text_encoder", "scheduler", …).
Components = dict[str, Any]


class Architecture:
    """One model family (SD1.5, SDXL, …): a stateless object, one instance in the registry.

    Class attributes hold what is fixed for the family; methods take the loaded
    :class:`~adcli.engine.backend.Backend` where the answer depends on the weights' configs.
    """

    # -- identity ---------------------------------------------------------------------------
    name: str = ""  # the registry key and ``arch`` setting's value
    title: str = ""  # how messages name it
    default_model: str = ""  # the hub id an ``arch`` setting picks when no model is given
    tiny_models: tuple[str, ...] = ()  # names of its random-weight test models, built in code
    denoiser_name: str = ""  # the pipeline component (and model-folder subfolder) of the denoiser
    pipeline_class: str = ""  # the diffusers pipeline class of the family, for messages and ``pipeline``
    text_parts: tuple[tuple[str, str], ...] = ()  # (tokenizer, text encoder) component names, in order
    # Named variants whose preset values may differ (``by_arch: flux-schnell``), told apart by the
    # denoiser's config (:meth:`variant_of`); the family's own values apply to every variant first.
    variants: tuple[str, ...] = ()

    # The released model's configs by component (the denoiser's under ``denoiser_name``, "vae",
    # "text_encoders"): full-size benchmarks build them with random weights; the tiny models keep
    # the denoiser's block layout, so their layer count is the published one.
    published_configs: dict[str, Any] = {}

    layer_kind: str = "self-attention"  # what messages call the AD layers ("this model has 16 self-attention layers")

    # -- latent geometry ---------------------------------------------------------------------
    latent_channels: int = 4
    vae_scale_factor: int = 8  # image pixels per latent pixel, each way
    patch_size: int = 1  # latent pixels per token side (transformers pack 2×2 patches)
    # (latent_channels, 3) and (3,): a latent pixel's approximate RGB in [-1, 1], for live previews
    preview_factors: tuple[tuple[float, float, float], ...] = ()
    preview_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)

    # -- guidance ------------------------------------------------------------------------------
    # True: a guidance scale > 1 runs the negative and the positive prompt in one batch and mixes
    # the outputs. False: the value is an input of the denoiser (FLUX.1-dev), or there is none.
    classifier_free_guidance: bool = True

    # -- tiling --------------------------------------------------------------------------------
    # True: the denoiser's convolutions can pad circularly (:meth:`circular_modules`), so it wraps by
    # itself. False (transformers): tiling rolls the latent per pass or wraps MultiDiffusion windows.
    circular_padding: bool = False

    # -- quantized weights ---------------------------------------------------------------------
    # True: the denoiser's linear layers can be quantized while loading (``quantize``: int8, fp8,
    # nf4) and it loads from GGUF files. The UNets are small enough not to need it.
    quantizable: bool = False

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: one token is ``vae_scale_factor × patch_size`` pixels."""
        return self.vae_scale_factor * self.patch_size

    def __repr__(self) -> str:
        return f"<architecture {self.name}>"

    def check_size(self, size: tuple[int, int]) -> None:
        """A (width, height) the family can work at: sides multiples of :attr:`size_multiple`
        (a one-line :class:`~adcli.errors.InputError` naming the multiple)."""
        multiple = self.size_multiple
        if any(side < multiple or side % multiple for side in size):
            raise InputError(
                f"size {size[0]}x{size[1]} does not fit {self.title}: both sides must be multiples of "
                f"{multiple} pixels; pick another {setting('size')}"
            )

    def check_tiling_control(self, tile: str, control: bool) -> None:
        """Seamless tiling with a ControlNet needs circular padding: rolling the latent would move it
        away from its control image."""
        if control and tile != "none" and not self.circular_padding:
            raise InputError(
                f"{setting('tile')} with a ControlNet needs circular padding, which {self.title} has not: "
                f"drop {setting('tile')} or the ControlNet"
            )

    def check_window(self, window: int, stride: int) -> None:
        """MultiDiffusion windows and their steps in whole tokens (2 latents on a 2×2-patch transformer)."""
        multiple = self.patch_size
        if window % multiple or stride % multiple:
            raise InputError(
                f"{setting('window')} {window} and {setting('stride')} {stride} must be multiples of {multiple} "
                f"latents on {self.title} (one token is {multiple}×{multiple} latents, {self.size_multiple} px): "
                f"pick even values"
            )

    # -- probe: JSON configs and checkpoint headers only (no torch) ------------------------------
    def claims_index(self, model_index: dict) -> bool:
        """Whether a diffusers ``model_index.json`` describes a model of this family."""
        raise NotImplementedError

    def claims_denoiser_config(self, config: dict) -> bool:
        """Whether the denoiser's ``config.json`` alone (no model index at hand) is this family's."""
        raise NotImplementedError

    def claims_checkpoint(self, keys: Collection[str]) -> bool:
        """Whether a single-file checkpoint with these tensor names is this family's."""
        raise NotImplementedError

    def check_checkpoint(self, path: Any, header: dict) -> None:
        """Raise :class:`~adcli.errors.ModelLoadError` for a claimed checkpoint adcli cannot use."""

    def count_layers(self, denoiser_config: dict) -> int:
        """AD-selectable attention layers of a denoiser built from this config."""
        raise NotImplementedError

    def count_checkpoint_layers(self, keys: Collection[str]) -> int:
        """AD-selectable attention layers of a single-file checkpoint, from its tensor names."""
        raise NotImplementedError

    def variant_of(self, denoiser_config: dict) -> str | None:
        """The variant (one of :attr:`variants`) a denoiser with this config is, or None for the plain family."""
        return None

    def checkpoint_variant(self, keys: Collection[str]) -> str | None:
        """The variant of a single-file checkpoint with these tensor names."""
        return None

    def tiny_variant(self, name: str) -> str | None:
        """The variant of the tiny model ``name``."""
        return None

    def preset_key(self, variant: str | None) -> str:
        """The ``by_arch`` key of a variant (``flux-schnell``), or of the family itself."""
        return self.name if variant is None else f"{self.name}-{variant}"

    def tiny_layers(self, name: str) -> int:
        """Attention layers of the tiny model ``name``: the published layout's (tiny models keep it)."""
        return self.count_layers(self.published_configs[self.denoiser_name])

    # -- loading ------------------------------------------------------------------------------
    def load_pretrained(self, source: str, dtype: torch.dtype, local_only: bool, quantize: str | None = None) -> Components:
        """Every component from a diffusers folder or hub id (the caller turns errors into one line);
        ``quantize`` (int8/fp8/nf4, only where :attr:`quantizable`, checked against the device by the
        caller) quantizes the denoiser while it loads."""
        raise NotImplementedError

    def load_single_file(
        self, path: Any, config: str | None, dtype: torch.dtype, local_only: bool, quantize: str | None = None,
    ) -> Components:
        """Every component from one original-layout checkpoint; ``config``: diffusers configs to read it with;
        ``quantize`` as for :meth:`load_pretrained`."""
        raise NotImplementedError

    def build_tiny(self, name: str) -> Components:
        """The tiny random-weight model ``name`` (one of :attr:`tiny_models`), seeded, frozen, in eval mode."""
        raise NotImplementedError

    def pipeline(self, components: Components) -> Any:
        """The diffusers pipeline of these components (what a user would have loaded)."""
        raise NotImplementedError

    def claims_pipe(self, pipe: Any) -> bool:
        """Whether a user's diffusers pipeline is of this family."""
        raise NotImplementedError

    def components_of_pipe(self, pipe: Any) -> Components:
        """The pipeline's own modules (shared, not copied); a missing part is a ModelLoadError."""
        raise NotImplementedError

    def apply_loras(self, backend: Backend, loras: Sequence[tuple[str, float]]) -> tuple[LoraInfo, ...]:
        """Fuse each ``(path_or_hub_id, scale)`` into the weights; see :mod:`adcli.engine.loras`."""
        raise NotImplementedError

    def load_controlnet(self, backend: Backend, source: str, local_only: bool) -> torch.nn.Module:
        """A ControlNet for this backend: ``tiny`` (random, for a tiny model), a folder, hub id or file."""
        raise NotImplementedError

    def full_size_components(self) -> Components:
        """The published full-size architecture with random weights (benchmarks: cost without a download).
        Built on the current default device (a ``torch.device`` context)."""
        raise NotImplementedError

    # -- running ------------------------------------------------------------------------------
    def native_size(self, backend: Backend) -> tuple[int, int]:
        """(width, height) in pixels the model was trained at."""
        raise NotImplementedError

    def prediction(self, backend: Backend) -> Prediction:
        """What the denoiser predicts and how latents are noised (eps, v or flow), from its configs."""
        raise NotImplementedError

    def schedule(self, backend: Backend, steps: int, latent_hw: tuple[int, int]) -> Schedule:
        """The noise levels of ``steps`` sampling steps (and the denoiser's timestep at each), as the
        family's own pipeline sets them; ``latent_hw`` for schedules that depend on the image size."""
        raise NotImplementedError

    def encode_prompts(self, backend: Backend, prompts: list[str]) -> Conditioning:
        """Prompts through every text encoder, as the family's pipeline encodes them (batch-first tensors)."""
        raise NotImplementedError

    def model_inputs(
        self, backend: Backend, conditioning: Conditioning, batch: int, latent_hw: tuple[int, int],
        guidance: float | None = None,
    ) -> dict:
        """Keyword inputs of :meth:`predict` for ``batch`` latents of ``latent_hw``: the conditioning
        (repeated to the batch) and what else the denoiser takes. ``guidance``: the value of an
        embedded guidance input (None: the value for feature passes)."""
        raise NotImplementedError

    def predict(
        self, backend: Backend, latents: torch.Tensor, timestep: torch.Tensor, inputs: dict,
        control: Control | None = None,
    ) -> torch.Tensor:
        """One denoiser pass: latents (B, C, h, w) at ``timestep`` (a scalar or (B,)) → the raw
        prediction (B, C, h, w) in the model's dtype; ControlNet residuals added when ``control``."""
        raise NotImplementedError

    def attention_layers(self, denoiser: torch.nn.Module) -> list[torch.nn.Module]:
        """The attention modules AD can use, in forward order (``layers`` indexes this list)."""
        raise NotImplementedError

    def capture(self, denoiser: torch.nn.Module, positions: Sequence[int], store: FeatureStore) -> Any:
        """Capture processors for the layers at ``positions``: an object whose ``installed()`` context
        manager swaps them in (and back in ``finally``); each records its layer into ``store``."""
        raise NotImplementedError

    def from_pipeline_latents(self, latents: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
        """The start latents the family's diffusers pipeline takes as ``latents=`` in the engine's
        layout (B, C, h, w); the same tensor for a UNet, unpacked for FLUX."""
        return latents

    def adain(self, latents: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """AdaIN of latents (B, C, h, w) to the reference latents (R, C, h', w'), over the family's channels."""
        from adcli.engine.guidance import adain

        return adain(latents, reference)

    def circular_modules(self, backend: Backend) -> list[torch.nn.Module]:
        """Modules of the denoiser whose convolutions pad circularly for seamless tiling (none: the
        family tiles by wrapping its windows instead)."""
        return []
