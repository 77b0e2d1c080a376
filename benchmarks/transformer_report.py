"""The FLUX.1/SD3.5 rows of ``make gpu-check`` as a Markdown table (step 4 of ``RESULTS.md``)."""

from __future__ import annotations

from dataclasses import asdict

from benchmarks.transformer_rows import ROWS, TINY_FACTOR

EXPLANATION = [
    "Full-size FLUX.1-dev and SD3.5 Medium transformers and VAEs with random weights (no download); small "
    "stand-in text encoders (they run once per prompt), but each plan counts the released ones (T5-XXL, CLIPs). "
    "Each row: AD t2i at the preset's settings (FLUX.1-dev 50 steps × 2 AD iterations, guidance 3.5; "
    "SD3.5 40 × 2, CFG 4.5), with the memory plan adcli makes for a card of that many free GB "
    "(what `--low-vram` chooses there). Peak memory: a few steps and the decode (it does not grow with "
    "the steps); time: seconds per measured step × the preset's steps + the decode, **extrapolated**.",
    "",
    "Weights: int8 is torchao weight-only (`--quantize int8`); Q8_0 and Q4_K are GGUF blocks made in memory "
    "from the same random weights, into the `GGUFLinear` modules diffusers loads a GGUF file into (a 12 GB "
    "file written and read back would cost a minute of the call). The 4-bit row is Q4_K, not nf4: "
    "bitsandbytes' CUDA wheel is too large to carry. PSNR: the decoded image against the bf16 row of the "
    "same size, seed and weights — what the quantization costs the picture.",
]


def with_missing_rows(records: list[dict], stopped: str) -> list[dict]:
    """The step's records with a ``skipped`` record for each row it did not reach (killed at its budget)."""
    seen = {r["name"] for r in records}
    why = f"not reached ({stopped})" if stopped else "not reached"
    missing = [asdict(row) | {"name": row.name, "skipped": why} for row in ROWS if row.name not in seen]
    return records + missing


def _number(value, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{format(value, spec)}{unit}"


def _goal(value, limit, unit: str, judged: bool) -> str:
    if limit is None:
        return "—"
    text = f"≤ {limit:g} {unit}"
    if not judged or value is None:
        return text
    return text + (" ✅" if value <= limit else " ❌")


def _psnr(r: dict) -> str:
    if r.get("psnr_db") is not None:
        return f"{r['psnr_db']:.1f} dB"
    return r.get("psnr_note", "—")


def markdown_rows(records: list[dict], judged: bool) -> list[str]:
    """The explanation and one table line per row (its error, or why it was skipped, when it has no figures)."""
    lines = [*EXPLANATION, ""]
    if not judged:
        lines += [f"On a CPU: the tiny models at 1/{TINY_FACTOR} of each size, no goals judged.", ""]
    lines += ["| row | peak GB (reserved) | goal | s/step (measured steps) | whole run, extrapolated | goal | "
              "TFLOP/s (% of bf16 peak) | PSNR vs bf16 | plan on that card | note |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if "error" in r or "skipped" in r:
            what = f"FAILED: {r['error']}" if "error" in r else f"skipped: {r['skipped']}"
            lines.append(f"| {r['name']} | {what} | | | | | | | | {r.get('note', '')} |")
            continue
        run = f"{r['extrapolated_s']:.1f} s ({r['steps']}×{r['ad_iterations']})"
        memory = _number(r["peak_gb"], ".1f") + (f" ({r['reserved_gb']:.1f})" if r.get("reserved_gb") else "")
        speed = _number(r.get("tflops_per_s"), ".3g") + (f" ({r['peak_percent']:.0f} %)" if r.get("peak_percent") else "")
        lines.append(
            f"| {r['name']} | {memory} | {_goal(r['peak_gb'], r['goal_gb'], 'GB', judged)} | "
            f"{r['s_per_step']:.2f} ({r['measured_steps']}) | {run} | {_goal(r['extrapolated_s'], r['goal_s'], 's', judged)} | "
            f"{speed} | {_psnr(r)} | {r['plan']} | {r.get('note', '')} |")
    return lines
