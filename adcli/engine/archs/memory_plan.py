"""Which memory savings a FLUX/SD3 run needs, from the free GPU memory and the model's sizes: a
pure function, so its decisions are tested for 8, 12, 16, 24 and 80 GB without a GPU.

The savings, cheapest first, each taken only when the previous ones do not fit:
1. text encoders off the GPU after encoding (they run once per prompt; FLUX's T5-XXL is 9.5 GB);
2. per-block gradient checkpointing (about one more forward per AD iteration) and tiled VAE decoding;
3. group offloading of the transformer (blocks streamed from CPU memory: slow, the last resort),
   with a suggestion of the quantization that would fit without it (it changes the picture, so it
   is the user's choice).
Encoding a prompt needs the text encoders on the GPU beside what stays there; when that does not fit,
the transformer steps aside to the CPU while they encode (a second or two of copying per new prompt),
and encoders larger than the GPU itself encode on the CPU (slow: T5-XXL takes tens of seconds).

Sizes are estimates in GB (bf16 weights of the released models; activations of one AD pass at the
run's size, see :func:`transformer_sizes`) to be checked by ``make gpu-check`` on a real GPU. A
tenth of the free memory is kept for the allocator's fragmentation and the CUDA context.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

HEADROOM = 0.9
# Weight bytes relative to bf16: int8/fp8/Q8_0 one byte (+ a scale per row or per 32 values);
# nf4/Q4_K about 4.5 bits with their scales.
WEIGHT_FACTORS = {None: 1.0, "bf16": 1.0, "int8": 0.53, "fp8": 0.53, "q8_0": 0.53, "q6_k": 0.41,
                  "q5_k": 0.34, "nf4": 0.28, "q4_k": 0.28}
SUGGESTIONS = ("int8", "nf4")  # what to suggest, most faithful first


@dataclass(frozen=True)
class ModelSizes:
    """GB on the GPU: transformer weights in bf16, all text encoders, the VAE; one AD pass's saved
    activations with and without per-block checkpointing; the number of transformer blocks."""

    transformer: float
    text_encoders: float
    vae: float
    activations: float
    checkpointed_activations: float
    blocks: int
    stored: float | None = None  # GB of the transformer's weights as loaded (quantized or not), when measured


# The released models' parameter counts × 2 bytes: FLUX.1 12 B; SD3.5 Large 8.1 B, Medium 2.5 B;
# T5-XXL 4.76 B, CLIP-L 0.12 B, CLIP-G 0.69 B; the 16-channel VAE 84 M.
RELEASED = {
    "flux": dict(transformer=23.8, text_encoders=9.76, vae=0.17, blocks=57, width=3072),
    "sd3.5-large": dict(transformer=16.3, text_encoders=11.1, vae=0.17, blocks=38, width=2432),
    "sd3.5-medium": dict(transformer=5.0, text_encoders=11.1, vae=0.17, blocks=24, width=1536),
}
# Bytes an AD pass keeps per token and per unit of width in one block for its backward (bf16):
# q, k, v, attention output, the MLP's 4× hidden and its activation, norms, residuals ≈ 30 values.
SAVED_VALUES_PER_TOKEN = 30


def activation_sizes(tokens: int, width: int, blocks: int, bytes_per_value: int = 2) -> tuple[float, float]:
    """GB one AD pass keeps for its backward over ``tokens`` joint tokens in a transformer ``width`` wide
    with ``blocks`` blocks: (everything, with per-block checkpointing — each block's input plus one block)."""
    per_block = tokens * width * bytes_per_value / 1e9  # one (tokens, width) tensor
    return per_block * SAVED_VALUES_PER_TOKEN * blocks, per_block * (blocks + SAVED_VALUES_PER_TOKEN)


def transformer_sizes(model: str, width: int, height: int, text_tokens: int = 512) -> ModelSizes:
    """Sizes of a released ``model`` (``flux``, ``sd3.5-large``, ``sd3.5-medium``) for an image of
    ``width`` × ``height`` pixels (one token per 16 × 16 pixels) and ``text_tokens`` prompt tokens."""
    spec = RELEASED[model]
    tokens = (width // 16) * (height // 16) + text_tokens
    activations, checkpointed = activation_sizes(tokens, spec["width"], spec["blocks"])
    return ModelSizes(
        transformer=spec["transformer"], text_encoders=spec["text_encoders"], vae=spec["vae"],
        activations=activations, checkpointed_activations=checkpointed, blocks=spec["blocks"],
    )


def gb(value: float) -> str:
    """GB for a one-line note: whole GB from 10 up, one decimal below (none on a whole number: "8 GB
    free"), two significant digits under 0.1 (the tiny test models need MBs)."""
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}".removesuffix(".0") if value >= 0.1 else f"{value:.2g}"


@dataclass(frozen=True)
class MemoryPlan:
    """What a run does to fit, and the GPU memory it expects (GB)."""

    text_encoders_off_gpu: bool = False
    checkpointing: bool = False
    vae_tiling: bool = False
    group_offload: bool = False
    encode_aside: bool = False  # the transformer waits on the CPU while the text encoders encode
    encode_on_cpu: bool = False  # the text encoders do not fit the GPU at all: they encode on the CPU
    suggest_quantize: str | None = None
    expected_gb: float = 0.0
    free_gb: float = 0.0

    def describe(self, images: str = "") -> str:
        """One line saying what was chosen and why; ``images`` (e.g. "512x512-pixel images") says what for."""
        chosen = [text for flag, text in [
            (self.text_encoders_off_gpu, "text encoders off the GPU after encoding"),
            (self.checkpointing, "gradient checkpointing"),
            (self.vae_tiling, "tiled VAE"),
            (self.group_offload, "transformer blocks streamed from CPU memory (slow)"),
            (self.encode_aside, "the transformer on the CPU while a prompt encodes"),
            (self.encode_on_cpu, "text encoders run on the CPU (slow)"),
        ] if flag]
        line = f"{gb(self.free_gb)} GB free" + (f" for {images}" if images else "") + ": "
        line += (", ".join(chosen) if chosen else "everything fits on the GPU") + f" (about {gb(self.expected_gb)} GB)"
        if self.suggest_quantize:
            line += f"; {self.suggest_quantize} weights would fit without streaming"
        return line


def plan_memory(free_gb: float, sizes: ModelSizes, quantize: str | None = None) -> MemoryPlan:
    """The cheapest plan whose expected use fits ``free_gb`` (see the module's docstring);
    ``quantize`` is how the transformer's weights are stored (None: bf16; ``int8``, ``nf4``, ``q8_0``…);
    ``sizes.stored``, when measured, is their size as loaded."""
    budget = free_gb * HEADROOM
    weights = sizes.stored if sizes.stored is not None else sizes.transformer * WEIGHT_FACTORS[quantize]
    plan = MemoryPlan(free_gb=free_gb)
    steps = [
        (replace(plan), weights + sizes.text_encoders + sizes.vae + sizes.activations),
        (replace(plan, text_encoders_off_gpu=True), weights + sizes.vae + sizes.activations),
        (replace(plan, text_encoders_off_gpu=True, checkpointing=True, vae_tiling=True),
         weights + sizes.vae + sizes.checkpointed_activations),
    ]
    for candidate, expected in steps:
        if expected <= budget:
            return _encoding(replace(candidate, expected_gb=expected), sizes, weights, budget)
    # Streaming: two groups of blocks on the GPU at a time (the one computing, the next arriving).
    streamed = 2 * weights / sizes.blocks + sizes.vae + sizes.checkpointed_activations
    suggestion = None
    if quantize is None:
        fitting = [q for q in SUGGESTIONS
                   if sizes.transformer * WEIGHT_FACTORS[q] + sizes.vae + sizes.checkpointed_activations <= budget]
        suggestion = fitting[0] if fitting else None
    plan = MemoryPlan(text_encoders_off_gpu=True, checkpointing=True, vae_tiling=True, group_offload=True,
                      suggest_quantize=suggestion, expected_gb=streamed, free_gb=free_gb)
    return _encoding(plan, sizes, 2 * weights / sizes.blocks, budget)


def _encoding(plan: MemoryPlan, sizes: ModelSizes, resident: float, budget: float) -> MemoryPlan:
    """Where the text encoders encode when they leave the GPU after encoding: beside the ``resident``
    transformer weights when both fit, else with the transformer aside, else on the CPU."""
    if not plan.text_encoders_off_gpu or resident + sizes.text_encoders <= budget:
        return plan
    if sizes.text_encoders <= budget:
        return replace(plan, encode_aside=True)
    return replace(plan, encode_on_cpu=True)
