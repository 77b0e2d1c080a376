"""What ``make bench`` runs: one :class:`Case` per row, and how one is timed and counted."""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from adcli.engine.compile import compiled_denoiser
from adcli.engine.distill import FEATURE_CHUNK, distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.lowvram import low_vram
from adcli.engine.backend import Backend
from adcli.views.preview import PreviewWriter
from benchmarks.baseline import literal_algorithm1
from benchmarks.devices import psnr, sync
from benchmarks.sampling import counting_reference_passes, sampling_workload, window_count

LAYERS = (-6, -5, -4, -3, -2, -1)
LR = 0.05
CONTENT_WEIGHT = 0.25  # style transfer's λ; texture has none
SAMPLING = ("texture-sampling", "expand", "t2i")
REPEAT_BUDGET_S = 1.0  # no further repeats of a row once its timed runs took this long


@dataclass(frozen=True)
class Case:
    """One row: a task at the paper's settings, run by the engine or the literal baseline."""

    task: str  # "style-transfer" | "texture" | "vae-decode" | "texture-sampling" | "expand" | "t2i" | "preview"
    arch: str  # "sd15" | "sdxl" | "flux" | "sd3"
    size: int  # output width in pixels (the side of a square output)
    iterations: int  # optimization iterations; DDIM steps when sampling; decodes for vae-decode; preview calls
    impl: str = "engine"  # "engine" | "baseline"
    variant: str = ""  # "" | "low-vram" | "compile" | "chunk=N" | "int8" (torchao weights; PSNR vs the plain model)
    height: int = 0  # output height in pixels when not square
    ad_iterations: int = 0  # sampling: AD iterations after each DDIM step
    stride: int = 0  # expand: latents between neighbouring windows (the window is the UNet's size)

    @property
    def name(self) -> str:
        return " ".join(x for x in (self.task, self.impl, self.variant) if x)

    @property
    def pixels(self) -> tuple[int, int]:
        """(width, height) of the output."""
        return self.size, self.height or self.size

    @property
    def sampling(self) -> bool:
        return self.task in SAMPLING

    @property
    def feature_chunk(self) -> int:
        return int(self.variant.split("=")[1]) if self.variant.startswith("chunk=") else FEATURE_CHUNK


def plan(
    full: bool, iterations: int | None, with_compile: bool, size: int | None = None, steps: int | None = None,
    with_int8: bool = False,
) -> list[Case]:
    """The rows: full-size models at the paper's sizes on a GPU, tiny models at small sizes on a CPU.

    Expansion keeps its two output shapes (a 2:1 strip and a large square; 3 and 25 windows on a
    CPU) whatever ``size`` says; the literal baseline runs on the strip only (on the square it
    would recompute the reference for every window, iteration and step: far too long).
    """
    sd, xl = (size, size) if size else (512, 1024) if full else (64, 64)
    n_sd = iterations or (200 if full else 10)
    n_xl = iterations or (50 if full else 10)
    n_steps = steps or (50 if full else 2)
    strip, square, stride = ((1024, 512), 2048, 8) if full else ((128, 64), 192, 4)
    texture_sampling = dict(ad_iterations=3)
    expand = dict(ad_iterations=3, stride=stride)
    cases = [
        Case("style-transfer", "sd15", sd, n_sd, "engine"),
        Case("style-transfer", "sd15", sd, n_sd, "baseline"),
        Case("style-transfer", "sd15", sd, n_sd, "engine", "chunk=1"),
        Case("style-transfer", "sd15", sd, n_sd, "engine", "chunk=8"),
        Case("style-transfer", "sd15", sd, n_sd, "engine", "low-vram"),
        Case("texture", "sd15", sd, n_sd, "engine"),
        Case("texture", "sd15", sd, n_sd, "baseline"),
        Case("vae-decode", "sd15", sd, 1 if not full else 3),
        Case("preview", "sd15", sd, 50),
        Case("texture-sampling", "sd15", sd, n_steps, "engine", **texture_sampling),
        Case("texture-sampling", "sd15", sd, n_steps, "baseline", **texture_sampling),
        Case("expand", "sd15", strip[0], n_steps, "engine", height=strip[1], **expand),
        Case("expand", "sd15", strip[0], n_steps, "baseline", height=strip[1], **expand),
        Case("expand", "sd15", square, n_steps, "engine", height=square, **expand),
    ]
    if with_compile:
        cases.append(Case("style-transfer", "sd15", sd, n_sd, "engine", "compile"))
    cases += [
        Case("style-transfer", "sdxl", xl, n_xl, "engine"),
        Case("style-transfer", "sdxl", xl, n_xl, "baseline"),
        Case("style-transfer", "sdxl", xl, n_xl, "engine", "low-vram"),
        Case("t2i", "sdxl", xl, n_steps, "engine", ad_iterations=2),
        Case("t2i", "sdxl", xl, n_steps, "engine", "low-vram", ad_iterations=2),
        Case("vae-decode", "sdxl", xl, 1 if not full else 3),
        Case("vae-decode", "sdxl", xl, 1 if not full else 3, "engine", "low-vram"),
    ]
    if with_compile:
        cases.append(Case("style-transfer", "sdxl", xl, n_xl, "engine", "compile"))
    return cases + transformer_cases(full, size, n_steps, with_int8)


def transformer_cases(full: bool, size: int | None, steps: int, with_int8: bool) -> list[Case]:
    """FLUX.1-dev (512²) and SD3.5 Medium (1024²) t2i at the preset's settings, by the engine and the
    literal flow-matching loop (:mod:`benchmarks.baseline_flow`), and with int8 weights when torchao is
    installed (its cost to the picture as PSNR against the plain model's)."""
    cases = []
    for arch, side in (("flux", 512), ("sd3", 1024)):
        side = size or (side if full else 64)
        cases += [Case("t2i", arch, side, steps, "engine", ad_iterations=2),
                  Case("t2i", arch, side, steps, "baseline", ad_iterations=2)]
        if with_int8:
            cases.append(Case("t2i", arch, side, steps, "engine", "int8", ad_iterations=2))
    return cases


def _latents(backend: Backend, size: int, count: int, seed: int) -> torch.Tensor:
    side = size // backend.vae_scale_factor
    generator = torch.Generator("cpu").manual_seed(seed)
    channels = backend.vae.config.latent_channels
    return torch.randn(count, channels, side, side, generator=generator).to(backend.device)


def workload(backend: Backend, case: Case) -> Callable[[int], object]:
    """``run(n)`` does the case's work for ``n`` iterations (the inputs' values do not change the cost)."""
    if case.sampling:
        side = backend.native_size()[0] if case.task == "expand" else case.size
        return sampling_workload(backend, case, _latents(backend, side, 1, seed=1), LAYERS, LR)
    reference = _latents(backend, case.size, 1, seed=1)
    content = _latents(backend, case.size, 1, seed=2) if case.task == "style-transfer" else None
    init = content if content is not None else _latents(backend, case.size, 1, seed=3)
    weight = CONTENT_WEIGHT if content is not None else 0.0
    if case.task == "vae-decode":
        return lambda n: [backend.decode_latents(init) for _ in range(n)]
    if case.task == "preview":
        return preview_workload(backend, init)
    if case.impl == "baseline":
        return lambda n: literal_algorithm1(
            backend, init, reference, content, layers=LAYERS, iterations=n, lr=LR, content_weight=weight
        )
    guide = Guide(reference, content, weight)
    return lambda n: distill_by_optimization(
        backend, init, guide, layers=LAYERS, iterations=n, lr=LR, feature_chunk=case.feature_chunk
    )


def preview_workload(backend: Backend, latents: torch.Tensor) -> Callable[[int], object]:
    """``n`` calls of the live preview writing at every step: what one call costs the run's thread
    (the PNG is encoded and written on the writer's own thread; pending ones are dropped at close)."""
    folder = Path(tempfile.mkdtemp(prefix="adcli-bench-preview-"))

    def run(n: int) -> None:
        writer = PreviewWriter(folder / "bench.png", backend.arch.name, every=1)
        try:
            for step in range(1, n + 1):
                writer({"step": step, "total": n, "loss": None, "latents": latents})
        finally:
            writer.close()

    return run


def options(backend: Backend, case: Case) -> ExitStack:
    """The case's engine options, applied for the duration of a ``with`` block."""
    stack = ExitStack()
    if case.variant == "low-vram":
        stack.enter_context(low_vram(backend))
    if case.variant == "compile":
        stack.enter_context(compiled_denoiser(backend.denoiser))
    return stack


@dataclass
class Measurement:
    wall_s: float
    peak_bytes: int | None
    flops: int
    host_syncs: int | None  # times the host waited for the GPU in the first timed run (CUDA only)
    reference_passes: float | None = None  # sampling: no-gradient denoiser passes for the reference, per step
    windows: int | None = None  # expand: MultiDiffusion windows
    psnr_db: float | None = None  # int8 rows: the decoded image against the plain model's (same seed)


@contextmanager
def counting_syncs(device: torch.device, found: list) -> Iterator[None]:
    """Record each operation that makes the host wait for the GPU (torch's sync debug mode)."""
    if device.type != "cuda":
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")
    found.extend(w for w in caught if "synchroniz" in str(w.message).lower())


def measure(backend: Backend, case: Case, warmup: int, repeat: int = 1) -> Measurement:
    """Warm up, time the case up to ``repeat`` times (keep the fastest; no more repeats after
    ``REPEAT_BUDGET_S``), then count the FLOPs of a short run with the same pass shapes, scaled up
    to the full run (and, when sampling, its reference passes per step)."""
    device = backend.device
    run = workload(backend, case)
    if case.task == "vae-decode":
        warm, short = 1, 1
    elif case.sampling:  # every step costs the same
        warm, short = min(warmup, case.iterations), 1
    elif case.impl == "engine":
        # whole chunks of timesteps, as in the timed run (one graph per shape under --compile)
        short = min(case.feature_chunk, case.iterations)
        warm = min(case.iterations, max(warmup, case.feature_chunk))
    else:
        warm, short = min(warmup, case.iterations), 1
    with options(backend, case):
        run(warm)
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        walls, syncs = [], []
        for attempt in range(repeat):
            if sum(walls) > REPEAT_BUDGET_S:
                break  # long runs vary little: keep the whole benchmark short
            started = time.perf_counter()
            with counting_syncs(device, syncs) if attempt == 0 else nullcontext():
                run(case.iterations)
            sync(device)
            walls.append(time.perf_counter() - started)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        passes: list = []
        with counting_reference_passes(backend.denoiser, passes) if case.sampling else nullcontext():
            flops = count_flops(lambda: run(short), device) * case.iterations // short
    return Measurement(
        min(walls), peak, flops, len(syncs) if device.type == "cuda" else None,
        reference_passes=len(passes) / short if case.sampling else None, windows=window_count(backend, case),
    )


def picture_psnr(plain: Backend, quantized: Backend, case: Case) -> float | None:
    """PSNR (dB) of the image ``case`` makes on the ``quantized`` model against the ``plain`` model's,
    the same seed and inputs (None when they are identical)."""
    images = [backend.decode_latents(workload(backend, case)(case.iterations)) for backend in (plain, quantized)]
    value = psnr(*images)
    return None if math.isinf(value) else value


def count_flops(fn: Callable[[], object], device: torch.device) -> int:
    """FLOPs of ``fn`` by torch's FlopCounterMode, run eagerly (a compiled denoiser does the same work).

    On the CPU, attention is counted through the math kernel: the CPU's fused kernel is not in
    the counter's table.
    """
    counter = FlopCounterMode(display=False)
    math = sdpa_kernel([SDPBackend.MATH]) if device.type == "cpu" else nullcontext()
    with torch.compiler.set_stance("force_eager"), math, counter:
        fn()
    return counter.get_total_flops()
