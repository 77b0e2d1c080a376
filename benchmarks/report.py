"""Turning measurements into rows, a Markdown table and a JSON file."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import diffusers
import torch

from benchmarks.cases import Case, Measurement

# Dense bf16 tensor-core peak in TFLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = [
    ("H200", 989.0),
    ("H100 80GB HBM3", 989.0),  # the SXM part's name
    ("H100 SXM", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("RTX 6000 Ada", 364.0),
    ("RTX 4090", 165.0),
]


def device_peak_tflops(name: str) -> float | None:
    """The device's peak, or None when it is not in the table (the % column is then left out)."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return tflops
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@dataclass
class Row:
    name: str
    task: str
    impl: str
    variant: str
    arch: str
    size: int
    iterations: int
    wall_s: float
    ms_per_iteration: float
    peak_gpu_mib: float | None
    tflop: float
    peak_fraction: float | None
    host_syncs: int | None
    speedup_vs_baseline: float | None = None
    height: int = 0  # output height in pixels (= size when square)
    ad_iterations: int = 0  # sampling: AD iterations per step (iterations = DDIM steps)
    windows: int | None = None  # expand: MultiDiffusion windows
    ms_per_megapixel_step: float | None = None  # sampling: wall time per output megapixel per step
    reference_passes_per_step: float | None = None  # sampling: no-gradient reference UNet passes
    psnr_db: float | None = None  # int8 rows: the picture against the plain model's (None: identical)

    @property
    def shape(self) -> str:
        return f"{self.size}²" if self.height == self.size else f"{self.size}×{self.height}"

    @property
    def work(self) -> str:
        return f"{self.iterations}×{self.ad_iterations}" if self.ad_iterations else str(self.iterations)


def make_rows(results: list[tuple[Case, Measurement]], peak_tflops: float | None) -> list[Row]:
    rows = []
    for case, m in results:
        achieved = m.flops / m.wall_s / 1e12 if m.wall_s > 0 else 0.0
        width, height = case.pixels
        per_mpx = None
        if case.sampling:
            per_mpx = 1000 * m.wall_s / case.iterations / (width * height / 1e6)
        rows.append(Row(
            name=case.name, task=case.task, impl=case.impl, variant=case.variant, arch=case.arch,
            size=case.size, iterations=case.iterations, wall_s=m.wall_s,
            ms_per_iteration=1000 * m.wall_s / case.iterations,
            peak_gpu_mib=None if m.peak_bytes is None else m.peak_bytes / 2**20,
            tflop=m.flops / 1e12,
            peak_fraction=None if peak_tflops is None else achieved / peak_tflops,
            host_syncs=m.host_syncs, height=height, ad_iterations=case.ad_iterations, windows=m.windows,
            ms_per_megapixel_step=per_mpx, reference_passes_per_step=m.reference_passes, psnr_db=m.psnr_db,
        ))
    key = lambda r: (r.task, r.arch, r.size, r.height, r.iterations, r.ad_iterations)  # noqa: E731
    baselines = {key(r): r for r in rows if r.impl == "baseline"}
    for row in rows:
        base = baselines.get(key(row))
        if row.impl == "engine" and base is not None:
            row.speedup_vs_baseline = base.wall_s / row.wall_s
    return rows


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def markdown(rows: list[Row], meta: dict) -> str:
    lines = [
        f"Device: {meta['device_name']} · models: {meta['models']} · {meta['date']} · "
        f"torch {meta['torch']} · diffusers {meta['diffusers']}",
        "",
    ]
    if meta["models"] == "tiny":
        lines += ["Tiny models on a CPU: only the speed-up column means anything here.", ""]
    lines += [
        "| task | impl | arch | size | iters | wall s | ms/iter | peak GPU MiB | TFLOP | % of peak | host syncs | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        impl = r.impl + (f" ({r.variant})" if r.variant else "")
        fraction = None if r.peak_fraction is None else 100 * r.peak_fraction
        speedup = "—" if r.speedup_vs_baseline is None else f"{r.speedup_vs_baseline:.2f}×"
        lines.append(
            f"| {r.task} | {impl} | {r.arch} | {r.shape} | {r.work} | {r.wall_s:.3f} | "
            f"{r.ms_per_iteration:.1f} | {_cell(r.peak_gpu_mib, '.0f')} | {r.tflop:.3g} | "
            f"{_cell(fraction, '.1f')} | {'—' if r.host_syncs is None else r.host_syncs} | {speedup} |"
        )
    return "\n".join(lines + _preview_note(rows) + _sampling_table(rows) + _quantization_table(rows)) + "\n"


def _quantization_table(rows: list[Row]) -> list[str]:
    """int8 weights against the plain model (bf16 on a GPU, fp32 on a CPU): time and the picture's PSNR."""
    lines = []
    for r in (r for r in rows if r.variant == "int8"):
        plain = next((p for p in rows if p.impl == "engine" and not p.variant and (p.task, p.arch, p.size, p.height,
                      p.iterations) == (r.task, r.arch, r.size, r.height, r.iterations)), None)
        if plain is None:
            continue
        if not lines:
            lines = ["", "Quantized weights against the plain model (same seed and inputs):", "",
                     "| task | arch | size | weights | ms/step | plain ms/step | time ratio | PSNR vs plain |",
                     "|---|---|---|---|---|---|---|---|"]
        psnr = "identical" if r.psnr_db is None else f"{r.psnr_db:.1f} dB"
        lines.append(f"| {r.task} | {r.arch} | {r.shape} | {r.variant} | {r.ms_per_iteration:.1f} | "
                     f"{plain.ms_per_iteration:.1f} | {r.wall_s / plain.wall_s:.2f} | {psnr} |")
    return lines


def _preview_note(rows: list[Row]) -> list[str]:
    """The live preview's cost per call as a share of a style-transfer iteration of the same size."""
    lines = []
    for preview in (r for r in rows if r.task == "preview"):
        iteration = next((r for r in rows if r.task == "style-transfer" and r.impl == "engine" and not r.variant
                          and r.arch == preview.arch and r.size == preview.size), None)
        if iteration is not None:
            share = 100 * preview.ms_per_iteration / iteration.ms_per_iteration
            lines += ["", f"Live preview ({preview.arch}, {preview.shape}): {preview.ms_per_iteration:.2f} ms a call, "
                          f"{share:.2f} % of a style-transfer iteration ({iteration.ms_per_iteration:.1f} ms)."]
    return lines


def _sampling_table(rows: list[Row]) -> list[str]:
    """Per-step figures of the sampling rows: expansion's time per output megapixel (compare the
    two sizes) and per window, and how many reference passes a step runs (the engine: one)."""
    sampling = [r for r in rows if r.ad_iterations]
    if not sampling:
        return []
    lines = [
        "",
        "Sampling rows: iters = DDIM steps × AD iterations per step, ms/iter = ms per step.",
        "",
        "Sampling, per DDIM step:",
        "",
        "| task | impl | arch | size | windows | ms/step | ms per output MPx | ms per window | reference passes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sampling:
        impl = r.impl + (f" ({r.variant})" if r.variant else "")
        per_window = None if not r.windows else r.ms_per_iteration / r.windows
        lines.append(
            f"| {r.task} | {impl} | {r.arch} | {r.shape} | {'—' if r.windows is None else r.windows} | "
            f"{r.ms_per_iteration:.1f} | {_cell(r.ms_per_megapixel_step, '.1f')} | {_cell(per_window, '.2f')} | "
            f"{_cell(r.reference_passes_per_step, '.0f')} |"
        )
    unmatched = [r for r in sampling if r.impl == "engine" and not r.variant and r.speedup_vs_baseline is None
                 and any(b.impl == "baseline" and b.task == r.task for b in rows)]
    for r in unmatched:
        lines += ["", f"No baseline row for {r.task} at {r.shape}: the literal baseline would run "
                      f"{(r.windows or 1) * r.ad_iterations} reference passes per step ({r.windows or 1} windows × "
                      f"{r.ad_iterations} AD iterations); it is timed at the smaller size only."]
    return lines


def metadata(device: torch.device, models: str) -> dict:
    name = device_name(device)
    return {
        "device": str(device),
        "device_name": name,
        "peak_bf16_tflops": device_peak_tflops(name) if device.type == "cuda" else None,
        "models": models,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
    }


def write(rows: list[Row], meta: dict, folder: Path) -> tuple[Path, Path]:
    """Write ``bench-<time>.json`` and ``.md`` plus ``latest.*`` copies; return the two paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    data = json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    table = markdown(rows, meta)
    for stem in (f"bench-{stamp}", "latest"):
        (folder / f"{stem}.json").write_text(data, encoding="utf-8")
        (folder / f"{stem}.md").write_text(table, encoding="utf-8")
    return folder / f"bench-{stamp}.json", folder / f"bench-{stamp}.md"
