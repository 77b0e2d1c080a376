"""Every setting, declared once: name, type, range and help.

The YAML check, the command-line options (with ``[default: …]`` from the built-in preset), the
public API's keywords and the manifest columns are all derived from this table. A task's
default values live in its built-in preset (``configs/<task>.yaml``), the one file a user copies
to make their own; the table says what a value may be, the preset says what it is.

Adding a setting: one entry here, its key in the tasks that use it (``TASK_KEYS``) and their
YAML presets, and the code that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from adcli.engine.defaults import ARCH_NAMES, TINY_MODELS

ARCHS: tuple[str, ...] = ARCH_NAMES  # the architectures adcli knows (engine/archs registry)
Dtype = Literal["bf16", "fp16", "fp32"]
Tile = Literal["none", "x", "y", "xy"]
Arch = Literal[("auto", *ARCHS)]  # type: ignore[valid-type]
Quantize = Literal["none", "int8", "fp8", "nf4"]


@dataclass(frozen=True)
class Setting:
    """One setting. ``annotation`` is its Python type (``int``, ``float``, ``str``, ``bool``,
    ``Optional[str]``, ``tuple[int, ...]`` or a ``Literal``); numbers must be finite and within
    ``minimum``/``maximum`` (``above``: strictly greater than)."""

    name: str
    annotation: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    short: str | None = None  # a one-letter alias on the command line, e.g. "-n"
    metavar: str | None = None
    loading: bool = False  # a property of the loaded model: set by load_model, not per call
    run_option: bool = False  # how a command-line run shows its work, not what it computes
    pixels: bool = True  # False: where or how fast it runs, not what it makes (left out of --resume's fingerprint)
    help_for: dict[str, str] = field(default_factory=dict)  # task → help where it differs
    option: str | None = None  # the command-line flag when it is not --name-with-dashes

    @property
    def flag(self) -> str:
        return self.option or "--" + self.name.replace("_", "-")

    def help_in(self, task: str) -> str:
        return self.help_for.get(task, self.help)

    def range_text(self) -> str:
        """The allowed range in words, for messages: 'at least 1', 'greater than 0', 'between 0 and 1'."""
        low = f"greater than {_number(self.above)}" if self.above is not None else None
        if self.minimum is not None:
            low = f"at least {_number(self.minimum)}"
        if self.maximum is not None:
            if self.minimum is not None:
                return f"between {_number(self.minimum)} and {_number(self.maximum)}"
            return f"{low} and at most {_number(self.maximum)}" if low else f"at most {_number(self.maximum)}"
        return low or ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _either(names) -> str:
    """'a, b or c'."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


_MODEL_HELP = (
    "Model: a Hugging Face hub id, a local diffusers folder, a single .safetensors checkpoint (FLUX.1/SD3.5: "
    f"also .gguf; both with --model-config), or {_either(TINY_MODELS)} (random-weight test models built in code: "
    "fast, but they draw noise)."
)
_SAMPLE_STEPS = "Sampling steps (DDIM on SD1.5/SDXL, flow-matching Euler on FLUX.1/SD3.5)."
_AD_ITERATIONS = "Adam iterations on the latent after each sampling step; 0 gives plain sampling with the same seed."

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        # the model (load_model's keywords in the API)
        Setting("model", str, _MODEL_HELP, short="-m", loading=True,
                help_for={"finetune-vae": "Whose VAE to start from: hub id, diffusers folder, .safetensors file, or 'tiny'."}),
        Setting("model_config", Optional[str], "For a single-file checkpoint: a local diffusers folder (or hub id) of the same architecture to read its configs from.", loading=True),
        Setting("vae", Optional[str], "A separate VAE for encoding/decoding: diffusers folder (e.g. from `adcli finetune-vae`), hub id or .safetensors file.", loading=True,
                help_for={"finetune-vae": "Start from this VAE (folder, hub id or .safetensors) instead of the model's."}),
        Setting("loras", tuple[str, ...], "A LoRA to fuse into the model: file, folder or hub id, with an optional :SCALE (default 1.0), e.g. ink.safetensors:0.8. Repeat for several.", loading=True, metavar="LORA", option="--lora"),
        Setting("arch", Arch, f"{_either(ARCHS)}: without --model, use that architecture's default model; with --model, check it. Settings with per-architecture defaults follow it.", loading=True),
        Setting("controlnet", Optional[str], "ControlNet: hub id, diffusers folder or .safetensors file for the model's architecture ('tiny' with a tiny model). Needs --control.", loading=True),
        Setting("dtype", Dtype, "Precision of the denoiser (UNet or transformer) and text encoders on CUDA: bf16, fp16 or fp32. The CPU always uses fp32.", loading=True),
        Setting("device", str, "auto (CUDA if present), cpu, cuda or cuda:N.", loading=True, pixels=False),
        Setting("compile", bool, "torch.compile the denoiser: the first iterations are slow (compiling), long runs and batches get faster.", loading=True, pixels=False),
        Setting("quantize", Quantize, "FLUX.1/SD3.5: store the transformer's weights in fewer bits while it loads: int8 or fp8 (torchao weight-only, CPU or CUDA), nf4 (bitsandbytes, CUDA only); none keeps --dtype. Needs pip install 'adcli[quant]'; a .gguf model is quantized already.", loading=True),
        Setting("low_vram", bool, "For small GPUs: gradient checkpointing, text encoders and VAE off the GPU but while they encode or decode, tiled VAE. FLUX.1/SD3.5: as much of that as the free GPU memory needs, then transformer blocks streamed from CPU memory; says in one line what it chose. Slower.", loading=True, pixels=False),
        # what every image command computes
        Setting("seed", int, "Base seed; each image's seed is derived from it and the image's inputs.", minimum=0, maximum=2**63 - 1,
                help_for={"finetune-vae": "Seed of the random crops and flips."}),
        Setting("size", str, "Output size: WIDTHxHEIGHT (exact), N (the longer side; the input's aspect ratio is kept), or auto (the model's native pixel count, the input's aspect ratio). Sides are multiples of 8 (16 on FLUX.1 and SD3.5).", metavar="SIZE",
                help_for={
                    "texture": "Texture size: WIDTHxHEIGHT, N (N×N; with --target-mask the longer side) or auto (the model's native size). Multiples of 8 (16 on FLUX.1 and SD3.5).",
                    "expand": "Output size WIDTHxHEIGHT in pixels, multiples of 8 (16 on FLUX.1 and SD3.5), up to 16384 per side.",
                    "t2i": "Output size: WIDTHxHEIGHT, N (longer side), or auto: the model's native size (1024x1024 SDXL and SD3.5, 512x512 SD1.5); with --layout, its aspect ratio.",
                }),
        Setting("layers", tuple[int, ...], "Attention layers for the losses (the UNets' self-attention; FLUX.1's 19 double + 38 single blocks, SD3.5's joint attentions), comma-separated, in forward order; negative counts from the end (write --layers=-6,-5,…).", metavar="LIST"),
        Setting("lr", float, "Adam learning rate on the latent.", above=0,
                help_for={"finetune-vae": "Adam learning rate on the decoder weights."}),
        Setting("iterations", int, "Optimization iterations (the UNet timestep falls from T to 0 over them).", minimum=1, maximum=100_000, short="-n"),
        Setting("content_weight", float, "λ, the weight of the content loss (L = L_AD + λ·L_content).", minimum=0, maximum=1000,
                help_for={"t2i": "λ of the content loss on the --layout image (used only with --layout)."}),
        Setting("mask_content_weight", float, "λ for masked synthesis: how closely the output keeps the label-filled init image's layout.", minimum=0, maximum=1000),
        Setting("mode", Literal["optimize", "sample"], "optimize (Adam on the latent for --iterations) or sample (AD-guided sampling: --steps × --ad-iterations, no prompt, no CFG)."),
        Setting("steps", int, _SAMPLE_STEPS, minimum=1, maximum=1000,
                help_for={"finetune-vae": "Adam steps on the decoder.", "texture": "--mode sample: " + _SAMPLE_STEPS}),
        Setting("ad_iterations", int, _AD_ITERATIONS, minimum=0, maximum=1000),
        Setting("adain", bool, "AdaIN the latent's per-channel mean/std to the noised reference before each AD step."),
        Setting("negative_prompt", str, "What the images should not show (classifier-free guidance; FLUX.1 has none and ignores it)."),
        Setting("guidance", float, "Classifier-free guidance scale (1 turns it off); on FLUX.1-dev the guidance value it embeds (schnell has none).", minimum=1, maximum=100),
        Setting("strength", float, "With --layout: the share of the sampling steps run from the noised layout.", above=0, maximum=1),
        Setting("control_scale", float, "Weight of the ControlNet's residuals.", minimum=0, maximum=100),
        Setting("tile", Tile, "Seamless tiling: x, y or xy makes the result wrap around in that direction (circular padding in the UNet's and VAE's convolutions; FLUX.1/SD3.5: the latent rolled each pass, the VAE padding circularly); none turns it off."),
        Setting("window", int, "Window side in latents (64 = 512 px, what SD1.5 was trained on; even on FLUX.1 and SD3.5: whole tokens); the reference is resized to it.", minimum=8, maximum=512),
        Setting("stride", int, "Latents between neighbouring windows (smaller: more overlap, slower); at most --window, even on FLUX.1 and SD3.5.", minimum=1, maximum=512),
        Setting("window_batch", int, "Windows denoised and guided together in one UNet batch.", minimum=1, maximum=1024, pixels=False),
        Setting("crop_size", int, "Side of the random square crops, in pixels, a multiple of 8.", minimum=8, maximum=4096),
        Setting("batch_size", int, "Crops per step.", minimum=1, maximum=1024),
        # how a command-line run shows its work
        Setting("preview_every", int, "Keep OUTPUT.preview.png up to date every N iterations/steps while an image forms (a cheap latent preview, no VAE); 0 turns it off.", minimum=0, maximum=1_000_000, run_option=True, pixels=False),
    )
}

# The loading settings, in the order load_model takes them; t2i alone also takes arch and controlnet.
LOADING_KEYS: tuple[str, ...] = tuple(name for name, s in SETTINGS.items() if s.loading)
_T2I_LOADING = ("controlnet",)
_LOADING = tuple(name for name in LOADING_KEYS if name not in _T2I_LOADING)
_IMAGE = (*_LOADING, "seed", "size", "layers", "lr", "preview_every")
_OPTIMIZE = ("iterations", "content_weight")
_SAMPLE = ("steps", "ad_iterations", "adain")

TASK_KEYS: dict[str, tuple[str, ...]] = {
    "style-transfer": (*_IMAGE, *_OPTIMIZE),
    "appearance": (*_IMAGE, *_OPTIMIZE),
    "texture": (*_IMAGE, *_OPTIMIZE, "mask_content_weight", "tile", "mode", *_SAMPLE),
    "t2i": (*_IMAGE, *_T2I_LOADING, "negative_prompt", *_SAMPLE, "guidance", "content_weight", "strength", "control_scale", "tile"),
    "expand": (*_IMAGE, *_SAMPLE, "window", "stride", "window_batch", "tile"),
    "finetune-vae": ("model", "model_config", "vae", "arch", "device", "seed", "steps", "lr", "crop_size", "batch_size"),
}


def parse_lora_spec(text: str) -> tuple[str, float]:
    """``"ink.safetensors:0.8"`` → ``("ink.safetensors", 0.8)``; without ``:SCALE`` the scale is 1.0."""
    path, _, scale = str(text).rpartition(":")
    if path:
        try:
            return path, float(scale)
        except ValueError:
            pass
    return str(text), 1.0


def task_settings(task: str) -> list[Setting]:
    return [SETTINGS[name] for name in TASK_KEYS[task]]
