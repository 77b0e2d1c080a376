"""The FLUX.1 and SD3.5 rows of ``make gpu-check`` (issues 18 and 19): peak GPU memory, time and the
quantizations' cost to the picture of AD text-to-image on full-size transformers with random weights.

Each row is one AD-guided t2i run at the preset's settings (``configs/t2i.yaml``, ``by_arch``) with a
weight format (bf16, torchao int8, or Q8_0 / Q4_K GGUF blocks made in memory, :mod:`benchmarks.gguf_weights`)
and the memory plan adcli makes for a GPU of ``card_gb`` free memory (:mod:`adcli.engine.memory`: what
``--low-vram`` chooses on such a card), measured on whatever GPU runs it:

- peak memory over a few steps and the decode (it does not grow with the number of steps);
- seconds per step, extrapolated to the preset's step count (50 on FLUX.1-dev, 40 on SD3.5) plus the decode;
- PSNR of the decoded image against the bf16 row of the same size and seed (the same random weights):
  what the quantization costs the picture.

The transformer and VAE are the published architectures (random weights, built on the GPU); the
text encoders are small stand-ins of the widths the transformer reads (they run once per prompt),
but the plan is made with the released encoders' sizes (T5-XXL and CLIPs), as a real model would get.
On a CPU the same rows run on the tiny models at an eighth of the size (only the code paths count).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch

from benchmarks.devices import psnr, release_memory, sync, torchao_available

TORCHAO_MISSING = "torchao is not installed (pip install 'adcli[quant]'; make gpu-wheels carries it)"
# The 4-bit row: bitsandbytes' nf4 needs its CUDA wheel, which does not fit the device tool's 64 MiB with
# the rest (README, GPU check); a Q4_K GGUF is the same size (≈ 4.5 bits per weight) and what 12 GB cards run.
Q4_NOTE = "Q4_K GGUF in place of nf4 (bitsandbytes' wheel is too large to carry)"
PROMPT = "a watercolor painting of a lighthouse"
MEASURED_STEPS = {"cuda": 3, "cpu": 2}  # timed steps (a whole schedule of that many steps, then the decode)
TINY_FACTOR = 8  # on a CPU: tiny models at an eighth of the size (512² → 64²)
RESERVE_S = {"cuda": 30.0, "cpu": 5.0}  # a row is not started with less time than this left


@dataclass(frozen=True)
class TransformerRow:
    """One measured configuration and its goals (issue 18: bf16 rows; issue 19: quantized rows)."""

    arch: str  # "flux" | "sd3"
    size: int  # side of the square image in pixels, on a GPU
    weights: str  # "bf16" | "int8" | "q8_0" | "q4_k"
    card_gb: float  # the memory plan is made for a GPU with this much free memory
    goal_gb: float | None = None
    goal_s: float | None = None  # for the preset's whole run (extrapolated)
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.arch} {self.weights} {self.size}² on {self.card_gb:g} GB"


ROWS = (
    # One build per architecture and weight format; a build's rows go from the fewest savings to the most.
    # Issue 18's rows first (bf16), so that a short step loses issue 19's rows before them.
    TransformerRow("flux", 512, "bf16", 80, goal_s=45, note="an 80 GB card: nothing to save"),
    TransformerRow("flux", 512, "bf16", 32, goal_gb=32, goal_s=45),
    TransformerRow("flux", 1024, "bf16", 80, note="the 1024² reference of the Q8_0 row"),
    TransformerRow("sd3", 1024, "bf16", 12, goal_gb=12, note="SD3.5 Medium at its native size"),
    TransformerRow("sd3", 1024, "int8", 8, goal_gb=8),
    TransformerRow("flux", 512, "int8", 16, goal_gb=16),
    TransformerRow("flux", 512, "q8_0", 16, goal_gb=16),
    TransformerRow("flux", 1024, "q8_0", 20, goal_gb=20),
    TransformerRow("flux", 512, "q4_k", 12, goal_gb=12, note=Q4_NOTE),
)
# The released text encoders' size in GB (bf16), for the plan: the benchmark's stand-ins are tiny.
RELEASED_ENCODERS_GB = {"flux": 9.76, "sd3": 11.1}
RELEASED_MODEL = {"flux": "flux", "sd3": "sd3.5-medium"}


def t2i_settings(arch: str) -> dict:
    """The t2i preset's sampling settings for ``arch`` (its ``by_arch`` values over the defaults)."""
    from adcli.presets.loader import builtin_arch_defaults, builtin_default

    keys = ("steps", "guidance", "ad_iterations", "lr", "layers", "adain")
    return {key: builtin_arch_defaults("t2i", key).get(arch, builtin_default("t2i", key)) for key in keys}


def build(arch: str, weights: str, device: torch.device, models: str):
    """A backend of ``arch`` with ``weights``: the published architecture (``models`` "full", bf16 on a GPU)
    or the tiny model (fp32)."""
    from adcli.engine import archs
    from adcli.engine.models import load_backend

    if models == "full":
        from benchmarks.archs import build_full_backend

        backend = build_full_backend(arch, device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    else:
        backend = load_backend(archs.get(arch).tiny_models[0], device=device, dtype=torch.float32)
    if weights == "int8":
        from adcli.engine.archs.quantize import quantize_in_memory

        quantize_in_memory(backend.denoiser, "int8", device=device)
    elif weights in ("q8_0", "q4_k"):
        from benchmarks.gguf_weights import quantize_linears

        quantize_linears(backend.denoiser, weights, backend.dtype)
    release_memory(device)
    return backend


def plan_for_card(backend, card_gb: float, side: int):
    """What adcli's memory plan chooses for this backend on a GPU with ``card_gb`` free, for ``side``²
    images, counting the released text encoders; applied to the backend (for its lifetime)."""
    from adcli.engine.archs.memory_plan import plan_memory
    from adcli.engine.memory import apply_plan, model_sizes

    sizes = replace(model_sizes(backend, side * side), text_encoders=RELEASED_ENCODERS_GB[backend.arch.name])
    quantized = sizes.stored < 0.9 * sizes.transformer
    plan = plan_memory(card_gb, sizes, "stored" if quantized else None)
    apply_plan(backend, plan)
    return plan


def t2i_run(backend, side: int, steps: int) -> Callable[[], torch.Tensor]:
    """``run()`` → the latent of one AD t2i image, ``steps`` steps at the preset's settings, seed 0,
    a seeded random reference latent (the cost and the comparison do not need a real picture)."""
    from adcli.engine.config import SamplingConfig
    from adcli.engine.features import Guide
    from adcli.engine.sampler import distill_by_sampling, negative_conditioning, text_denoiser

    preset = t2i_settings(backend.arch.name)
    latent_side = side // backend.vae_scale_factor
    reference = torch.randn(1, backend.arch.latent_channels, latent_side, latent_side,
                            generator=torch.Generator().manual_seed(1))
    prompt = backend.encode_prompts([PROMPT])
    negative = negative_conditioning(backend, "") if backend.arch.classifier_free_guidance else None
    denoise = text_denoiser(backend, prompt, negative, preset["guidance"])
    config = SamplingConfig(steps, preset["ad_iterations"], preset["lr"], tuple(preset["layers"]), adain=preset["adain"])
    return lambda: distill_by_sampling(backend, denoise, Guide(reference), config, size=(side, side),
                                       generator=torch.Generator().manual_seed(0))


def measure(backend, row: TransformerRow, side: int, steps: int) -> tuple[dict, torch.Tensor]:
    """Warm up (one step, the prompt encoded), then time ``steps`` steps and the decode, with the peak
    GPU memory of both; returns the row's figures and the decoded image (1, 3, H, W) in [0, 1]."""
    device = backend.device
    t2i_run(backend, side, 1)()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run = t2i_run(backend, side, steps)
    started = time.perf_counter()
    latents = run()
    sync(device)
    sampled = time.perf_counter()
    image = backend.decode_latents(latents)
    decode_s = time.perf_counter() - sampled
    on_cuda = device.type == "cuda"
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if on_cuda else None
    reserved = torch.cuda.max_memory_reserved(device) / 1e9 if on_cuda else None
    per_step = (sampled - started) / steps
    preset = t2i_settings(backend.arch.name)
    figures = {"measured_steps": steps, "s_per_step": per_step, "decode_s": decode_s, "peak_gb": peak,
               "reserved_gb": reserved, "steps": preset["steps"], "ad_iterations": preset["ad_iterations"],
               "extrapolated_s": per_step * preset["steps"] + decode_s}
    if row.weights == "bf16":  # the speed rows: the work of one step, and the share of the GPU's peak it ran at
        figures |= _throughput(backend, side, per_step)
    return figures, image


def _throughput(backend, side: int, per_step: float) -> dict:
    """TFLOP of one step (torch's FlopCounterMode over a one-step run), TFLOP/s and % of the bf16 peak."""
    from benchmarks.cases import count_flops
    from benchmarks.report import device_name, device_peak_tflops

    tflop = count_flops(t2i_run(backend, side, 1), backend.device) / 1e12
    peak = device_peak_tflops(device_name(backend.device)) if backend.device.type == "cuda" else None
    return {"tflop_per_step": tflop, "tflops_per_s": tflop / per_step,
            "peak_percent": None if peak is None else 100 * tflop / per_step / peak}


def _picture_cost(references: dict, key: tuple[str, int], image: torch.Tensor, is_bf16: bool) -> dict:
    """The row's PSNR against the first bf16 image of its architecture and size, which becomes the
    reference when there is none yet; None with a note when there is nothing to compare (JSON-safe)."""
    reference = references.get(key)
    if reference is None:
        if is_bf16:
            references[key] = image
            return {"psnr_db": None, "psnr_note": "the reference"}
        return {"psnr_db": None, "psnr_note": "no bf16 image of this size to compare with"}
    value = psnr(image, reference)
    return {"psnr_db": None, "psnr_note": "identical pixels"} if math.isinf(value) else {"psnr_db": value}


def run_rows(device: torch.device, budget_s: float, on_row: Callable[[dict], None], models: str | None = None) -> None:
    """Every row in order, each reported through ``on_row`` (figures, or its error, or why it was
    skipped); rows of one architecture and weight format share one build. ``models``: "full" (the
    default on a GPU) or "tiny" (on a CPU), the tiny ones at 1/``TINY_FACTOR`` of each size."""
    kind = device.type
    models = models or ("full" if kind == "cuda" else "tiny")
    deadline = time.monotonic() + budget_s
    references: dict[tuple[str, int], torch.Tensor] = {}
    backend, built = None, None
    for row in ROWS:
        side = row.size if kind == "cuda" else row.size // TINY_FACTOR  # a CPU: small images whatever the model
        record = asdict(row) | {"name": row.name, "side": side}
        if row.weights == "int8" and not torchao_available():
            on_row(record | {"skipped": TORCHAO_MISSING})
            continue
        if deadline - time.monotonic() < RESERVE_S[kind]:
            on_row(record | {"skipped": "not started: the step's time was nearly spent"})
            continue
        try:
            if built != (row.arch, row.weights):
                backend, built = None, None
                release_memory(device)
                started = time.monotonic()
                backend = build(row.arch, row.weights, device, models)
                built, record["build_s"] = (row.arch, row.weights), time.monotonic() - started
            plan = plan_for_card(backend, row.card_gb, side)
            record["plan"] = plan.describe()
            figures, image = measure(backend, row, side, MEASURED_STEPS[kind])
            record |= figures
            record |= _picture_cost(references, (row.arch, side), image, row.weights == "bf16")
        except Exception as error:  # noqa: BLE001 - a failed row is reported, the others still run
            message = str(error).strip().splitlines()
            record["error"] = f"{type(error).__name__}: {message[0][:200] if message else ''}"
            backend, built = None, None  # a half-quantized or half-placed model is not reused
            release_memory(device)
        on_row(record)
    backend = None
    release_memory(device)
