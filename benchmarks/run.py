"""``make bench`` / ``python -m benchmarks.run``: adcli's engine side by side with literal Algorithms 1 and 2.

On a CUDA GPU it runs full-size architectures (SD1.5, SDXL) with random weights in bf16 at the
paper's sizes; on a CPU, the tiny models at small sizes and few steps (only the speed-up means
anything there).
Results go to ``benchmarks/results/`` as JSON and Markdown, and the table is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from adcli.engine import archs
from adcli.engine.backend import Backend
from adcli.engine.models import load_backend
from benchmarks.cases import Case, measure, picture_psnr, plan
from benchmarks.devices import release_memory, torchao_available
from benchmarks.report import make_rows, markdown, metadata, write

RESULTS = Path(__file__).resolve().parent / "results"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda[:N]")
    parser.add_argument("--models", choices=["full", "tiny"], help="default: full on CUDA, tiny on a CPU")
    parser.add_argument("--iterations", type=int, help="override every optimization's iteration count")
    parser.add_argument("--steps", type=int, help="override every sampling row's DDIM step count")
    parser.add_argument("--size", type=int,
                        help="override the image side in pixels (multiple of 8) of every row but expansion's")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up iterations before each timed run")
    parser.add_argument("--repeat", type=int, help="timed runs per row, the fastest kept (default: 1 on CUDA, 3 on a CPU)")
    parser.add_argument("--only", action="append", default=[],
                        help="run rows whose name and size ('expand engine 1024x512') contain this (repeatable)")
    parser.add_argument("--arch", choices=archs.names(), action="append", help="only these architectures")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="include the --compile rows (default: on CUDA only)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    return parser.parse_args(argv)


def _backend(arch: str, models: str, device: torch.device, quantize: str | None = None) -> Backend:
    if models == "tiny":
        return load_backend(archs.get(arch).tiny_models[0], device=device, dtype=torch.float32, quantize=quantize)
    from benchmarks.archs import build_full_backend

    backend = build_full_backend(arch, device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    if quantize:
        from adcli.engine.archs.quantize import quantize_in_memory

        quantize_in_memory(backend.denoiser, quantize, device=device)
    return backend


def _label(case: Case) -> str:
    """What ``--only`` matches: the row's name and size, e.g. ``expand engine 1024x512``."""
    width, height = case.pixels
    return f"{case.name} {width}x{height}"


def _say(case: Case) -> None:
    work = f"{case.iterations}×{case.ad_iterations}" if case.sampling else case.iterations
    print(f"… {case.arch} {_label(case)} ({work})", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    models = args.models or ("full" if device.type == "cuda" else "tiny")
    if device.type == "cpu":
        # Tiny models are dispatch-bound: one thread avoids waiting on a second, often busy, core.
        torch.set_num_threads(1)
    repeat = args.repeat or (1 if device.type == "cuda" else 3)
    with_compile = args.compile if args.compile is not None else device.type == "cuda"

    cases = [
        c for c in plan(models == "full", args.iterations, with_compile, args.size, args.steps, torchao_available())
        if (not args.only or any(s in _label(c) for s in args.only)) and (not args.arch or c.arch in args.arch)
    ]
    meta = metadata(device, models)
    results: list[tuple[Case, object]] = []
    for arch in dict.fromkeys(c.arch for c in cases):
        backend = _backend(arch, models, device)
        for case in (c for c in cases if c.arch == arch and c.variant != "int8"):
            _say(case)
            results.append((case, measure(backend, case, args.warmup, repeat)))
        int8 = [c for c in cases if c.arch == arch and c.variant == "int8"]
        if int8:  # the same weights quantized, beside the plain model (for the picture's PSNR)
            quantized = _backend(arch, models, device, quantize="int8")
            for case in int8:
                _say(case)
                measured = measure(quantized, case, args.warmup, repeat)
                measured.psnr_db = picture_psnr(backend, quantized, case)
                results.append((case, measured))
            del quantized
        del backend
        release_memory(device)
    rows = make_rows(results, meta["peak_bf16_tflops"])
    json_path, md_path = write(rows, meta, args.out)
    print(markdown(rows, meta))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
