"""``make gpu-check`` / ``python -m benchmarks.gpu_check``: the CUDA proof and the measured table, in one command.

Four steps, each a subprocess killed at its time budget (what it finished is kept):
1. every adcli command on the tiny models, bf16 (one fp16), each image checked (``gpu_commands``);
2. the CUDA tests, ``pytest -m cuda tests/engine/test_cuda.py`` (skipped without CUDA);
3. the benchmark's key rows on the full-size SD1.5/SDXL architectures with random weights, engine
   and literal baseline side by side, with the targets of issue 12;
4. FLUX.1-dev and SD3.5 Medium AD t2i on full-size random-weight transformers: peak memory, time and
   the quantizations' cost to the picture, against issues 18 and 19's goals (``transformer_rows``).
On a CPU (``--device cpu``, ``make gpu-check DEVICE=cpu``) the same steps run at tiny sizes in
about 3 minutes, and CI runs them, so that the script cannot rot between GPU sessions. It never
installs anything: on a machine without network, missing packages come as wheels (README, "GPU check").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.gpu_commands import ROOT, commands, run_commands

STEPS = ("commands", "cuda-tests", "benchmark", "transformers")
# Seconds per step: on one H100/H200 the four add up to 9 minutes, what one call of the device tool
# allows beside the wheels' install (10 minutes at most); on a CPU to about 3.5. A step may also use
# what the steps before it left unused.
# On CUDA the budgets fit the device tool's minutes. On a CPU (CI) they only stop a hung step:
# the CPU run checks that every step works, not how fast a busy 2-core machine does it.
BUDGETS = {"cuda": {"commands": 120, "cuda-tests": 75, "benchmark": 175, "transformers": 170},
           "cpu": {"commands": 480, "cuda-tests": 120, "benchmark": 360, "transformers": 240}}
TITLES = {"commands": "1. Every command (tiny models)", "cuda-tests": "2. CUDA tests (pytest -m cuda)",
          "benchmark": "3. Benchmark key rows", "transformers": "4. FLUX.1 and SD3.5: memory, time, quantization"}
# The rows of step 3, as (task, arch, impl, variant) of benchmarks.cases.plan, in running order:
# the compile row last, so that a slow compile cannot cost the others their time.
KEY_ROWS = (
    ("style-transfer", "sd15", "engine", ""), ("style-transfer", "sd15", "baseline", ""),
    ("texture-sampling", "sd15", "engine", ""), ("texture-sampling", "sd15", "baseline", ""),
    ("t2i", "sdxl", "engine", ""), ("t2i", "sdxl", "engine", "low-vram"),
    ("style-transfer", "sd15", "engine", "compile"),
)
# Issue 12's targets on one H100: (field, limit) pairs; a speed-up is a floor, the others ceilings.
TARGETS = {
    ("style-transfer", "sd15", "engine", ""): (("wall_s", 1.5), ("speedup", 5.0), ("peak_gb", 3.0)),
    ("texture-sampling", "sd15", "engine", ""): (("wall_s", 0.8),),
    ("t2i", "sdxl", "engine", ""): (("wall_s", 5.0),),
    ("t2i", "sdxl", "engine", "low-vram"): (("peak_gb", 8.0),),
}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--out-dir", type=Path, help="where RESULTS.md and RESULTS.json go "
                        "(default: benchmarks/ on CUDA, benchmarks/results/ on a CPU, never over the GPU's table)")
    parser.add_argument("--jobs", type=int, help="commands run side by side in step 1 (default 4 on CUDA)")
    parser.add_argument("--skip", action="append", default=[], choices=STEPS, help="leave out a step (repeatable)")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # internal: run one step, in a child
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, default=600.0, help=argparse.SUPPRESS)  # the child's seconds
    return parser.parse_args(argv)


def _append(path: Path, record: dict) -> None:
    """One JSON line per finished item, so that a step killed at its budget keeps what it did."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


# --- the steps, each run in a child process --------------------------------------------------


def step_commands(device: str, work: Path, records: Path, jobs: int | None) -> None:
    on_cuda = device == "cuda"
    todo = commands(device, size=128 if on_cuda else 64, iterations=20 if on_cuda else 5, steps=5 if on_cuda else 2,
                    compile_budget_s=120 if on_cuda else 60)
    # On a CPU each interpreter start costs seconds: run the commands through adcli's entry point here.
    run_commands(todo, sys.executable, work / "commands", BUDGETS[device]["commands"], jobs or (4 if on_cuda else 1),
                 in_process=not on_cuda, on_result=lambda result: _append(records, asdict(result)))


def step_cuda_tests(work: Path, records: Path) -> None:
    report = work / "cuda-tests.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                    f"--junitxml={report}", str(ROOT / "tests" / "engine" / "test_cuda.py")], cwd=ROOT, check=False)
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome, message = tag, (found.get("message") or "").splitlines()[0][:200] if found.get("message") else ""
        _append(records, {"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time", 0)),
                          "message": message})


def step_transformers(device: torch.device, records: Path, budget: float) -> None:
    from benchmarks.transformer_rows import run_rows

    if device.type == "cpu":
        torch.set_num_threads(1)  # tiny models: dispatch-bound
    run_rows(device, budget, lambda row: _append(records, row))


def step_benchmark(device: torch.device, records: Path) -> None:
    from benchmarks.cases import measure, plan
    from benchmarks.report import device_name, device_peak_tflops, make_rows
    from benchmarks.devices import release_memory
    from benchmarks.run import _backend

    full = device.type == "cuda"
    peak = device_peak_tflops(device_name(device)) if full else None
    if not full:
        torch.set_num_threads(1)  # tiny models: dispatch-bound
    cases = {(c.task, c.arch, c.impl, c.variant): c
             for c in plan(full, None if full else 8, with_compile=True, steps=None if full else 2)}
    todo = [cases[key] for key in KEY_ROWS]
    groups: list[tuple[str, list]] = []  # consecutive rows of one architecture share its model
    for case in todo:
        if groups and groups[-1][0] == case.arch:
            groups[-1][1].append(case)
        else:
            groups.append((case.arch, [case]))
    for arch, group in groups:
        backend = _backend(arch, "full" if full else "tiny", device)
        for case in group:
            print(f"… {case.name} {arch} {case.size}", file=sys.stderr, flush=True)
            try:
                row = asdict(make_rows([(case, measure(backend, case, warmup=2 if full else 1))], peak)[0])
            except Exception as error:  # noqa: BLE001 - a failed row is reported, the others still run
                row = {"name": case.name, "task": case.task, "arch": arch, "impl": case.impl, "variant": case.variant,
                       "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"}
            _append(records, row)
        del backend
        release_memory(device)


# --- the parent: budgets, the report ----------------------------------------------------------


def _run_step(step: str, device: str, work: Path, jobs: int | None, budget: float) -> tuple[list[dict], float, str]:
    """Run ``step`` in a child killed at ``budget``; returns its records, seconds and "" or why it stopped."""
    records = work / f"{step}.jsonl"
    records.unlink(missing_ok=True)
    args = [sys.executable, "-m", "benchmarks.gpu_check", "--step", step, "--device", device, "--work", str(work),
            "--budget", str(budget)]
    if jobs:
        args += ["--jobs", str(jobs)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    if device == "cpu":
        env["OMP_NUM_THREADS"] = "1"
        env.setdefault("ADCLI_COMPILE_BACKEND", "eager")  # inductor's C++ build takes many minutes on a CPU
    started = time.monotonic()
    child = subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True)
    stopped = ""
    try:
        code = child.wait(timeout=budget)
        if code != 0:
            stopped = f"the step exited with {code}"
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        stopped = f"stopped at its {budget:.0f} s budget"
    seconds = time.monotonic() - started
    found = [json.loads(line) for line in records.read_text().splitlines()] if records.exists() else []
    return found, seconds, stopped


def _add_speedups_and_targets(rows: list[dict], judged: bool) -> None:
    """Engine ÷ baseline speed-up from the same run, TFLOP/s, GiB, and each target met or missed."""
    def key(r):
        return (r["task"], r["arch"], r.get("size"), r.get("height"), r.get("iterations"), r.get("ad_iterations"))

    baselines = {key(r): r for r in rows if r.get("impl") == "baseline" and "error" not in r}
    for r in rows:
        if "error" in r:
            continue
        base = baselines.get(key(r))
        r["speedup"] = base["wall_s"] / r["wall_s"] if r["impl"] == "engine" and base and r["wall_s"] else None
        r["tflops_per_s"] = r["tflop"] / r["wall_s"] if r["wall_s"] else 0.0
        r["peak_gb"] = None if r["peak_gpu_mib"] is None else r["peak_gpu_mib"] * 2**20 / 1e9
        r["targets"] = []
        for field, limit in TARGETS.get((r["task"], r["arch"], r["impl"], r["variant"]), ()) if judged else ():
            value = r.get(field)
            met = None if value is None else value >= limit if field == "speedup" else value <= limit
            r["targets"].append({"field": field, "limit": limit, "value": value, "met": met})


def metadata(device: torch.device) -> dict:
    from benchmarks.report import metadata as bench_metadata

    meta = bench_metadata(device, "full" if device.type == "cuda" else "tiny")
    meta["cuda"] = torch.version.cuda
    meta["python"] = sys.version.split()[0]
    return meta


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


_TARGET_TEXT = {"wall_s": "≤ {:g} s", "speedup": "≥ {:g}× baseline", "peak_gb": "≤ {:g} GB"}


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [
        "# `make gpu-check` results", "",
        f"Device: **{meta['device_name']}** · {meta['date']} · torch {meta['torch']} · CUDA {meta['cuda'] or '—'} · "
        f"diffusers {meta['diffusers']} · Python {meta['python']} · models: {meta['models']}", "",
        f"Total {report['seconds']:.0f} s (budget {report['budget_s']} s) · **{'PASSED' if report['ok'] else 'FAILED'}**",
    ]
    if meta["models"] == "tiny":
        lines += ["", "Tiny models on a CPU: this run proves the script, not the speed; only a GPU run's table counts."]
    for step in report["steps"]:
        name, records = step["step"], step["records"]
        lines += ["", f"## {TITLES[name]}", "",
                  f"{step['seconds']:.0f} s of a {step['budget_s']} s budget" + (f" — {step['stopped']}" if step["stopped"] else ""), ""]
        if name == "commands":
            lines += ["| command | result | seconds | images (size, mean, std) |", "|---|---|---|---|"]
            for r in records:
                images = "; ".join(f"{i['size'][0]}×{i['size'][1]}, {i['mean']:.0f}, {i['std']:.0f}" for i in r["images"])
                lines.append(f"| {r['name']} | {'ok' if r['ok'] else 'FAILED: ' + r['problem']} | {r['seconds']:.1f} | {images or '—'} |")
        elif name == "transformers":
            from benchmarks.transformer_report import markdown_rows

            lines += markdown_rows(records, judged=meta["models"] != "tiny")
        elif name == "cuda-tests":
            lines += ["| test | outcome | seconds |", "|---|---|---|"]
            lines += [f"| {r['name']} | {r['outcome']}{': ' + r['message'] if r['message'] else ''} | {r['seconds']:.1f} |"
                      for r in records]
        else:
            lines += ["| row | arch | size | work | time s | ms/it | peak GiB | TFLOP/s | % of bf16 peak | speed-up vs baseline | targets |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
            for r in records:
                if "error" in r:
                    lines.append(f"| {r['name']} | {r['arch']} | | | FAILED: {r['error']} | | | | | | |")
                    continue
                shape = f"{r['size']}²" if r["height"] == r["size"] else f"{r['size']}×{r['height']}"
                work = f"{r['iterations']}×{r['ad_iterations']}" if r["ad_iterations"] else str(r["iterations"])
                gib = None if r["peak_gpu_mib"] is None else r["peak_gpu_mib"] / 1024
                fraction = None if r["peak_fraction"] is None else 100 * r["peak_fraction"]
                targets = ", ".join(
                    _TARGET_TEXT[t["field"]].format(t["limit"]) + (" ✅" if t["met"] else " ❌" if t["met"] is False else " ?")
                    for t in r["targets"])
                lines.append(
                    f"| {r['name']} | {r['arch']} | {shape} | {work} | {r['wall_s']:.3f} | {r['ms_per_iteration']:.1f} | "
                    f"{_fmt(gib, '.2f')} | {r['tflops_per_s']:.3g} | {_fmt(fraction, '.1f')} | "
                    f"{_fmt(r['speedup'], '.2f')}{'×' if r['speedup'] else ''} | {targets or '—'} |")
    return "\n".join(lines) + "\n"


def _step_ok(step: dict, on_cuda: bool) -> bool:
    if step["stopped"]:
        return False
    records = step["records"]
    if step["step"] == "commands":
        return bool(records) and all(r["ok"] for r in records)
    if step["step"] == "cuda-tests":
        bad = [r for r in records if r["outcome"] in ("failure", "error") or (on_cuda and r["outcome"] == "skipped")]
        return bool(records) and not bad
    if step["step"] == "transformers":
        # a row skipped for a package that a CPU run lacks (torchao) is fine there; on CUDA it must run
        return bool(records) and not any("error" in r or (on_cuda and "skipped" in r) for r in records)
    return len(records) == len(KEY_ROWS) and not any("error" in r for r in records)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    name = args.device
    device = torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)
    kind = device.type
    if args.step:  # in the child
        records = args.work / f"{args.step}.jsonl"
        if args.step == "commands":
            step_commands(kind, args.work, records, args.jobs)
        elif args.step == "cuda-tests":
            step_cuda_tests(args.work, records)
        elif args.step == "transformers":
            # the rows stop starting a little before the parent's kill, so that the table says which were skipped
            step_transformers(device, records, args.budget - 10)
        else:
            step_benchmark(device, records)
        return 0
    out_dir = args.out_dir or (ROOT / "benchmarks" if kind == "cuda" else ROOT / "benchmarks" / "results")
    started = time.monotonic()
    report = {"meta": metadata(device), "budget_s": sum(BUDGETS[kind][s] for s in STEPS if s not in args.skip),
              "steps": []}
    work = Path(tempfile.mkdtemp(prefix="adcli-gpu-check-"))
    steps = [step for step in STEPS if step not in args.skip]
    try:
        for i, step in enumerate(steps):
            # its own budget plus what the steps before it left unused: the total stays within the sum
            later = sum(BUDGETS[kind][s] for s in steps[i + 1:])
            budget = round(sum(BUDGETS[kind][s] for s in steps) - (time.monotonic() - started) - later)
            print(f"== {TITLES[step]} (budget {budget} s)", file=sys.stderr, flush=True)
            records, seconds, stopped = _run_step(step, kind, work, args.jobs, budget)
            if step == "transformers":
                from benchmarks.transformer_report import with_missing_rows

                records = with_missing_rows(records, stopped)
            report["steps"].append({"step": step, "budget_s": budget, "seconds": seconds, "stopped": stopped,
                                    "records": records})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for step in report["steps"]:
        if step["step"] == "benchmark":
            _add_speedups_and_targets(step["records"], judged=kind == "cuda")
        step["ok"] = _step_ok(step, kind == "cuda")
    report["seconds"] = time.monotonic() - started
    report["ok"] = all(s["ok"] for s in report["steps"])
    table = markdown(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "RESULTS.md", out_dir / "RESULTS.json"]
    for path, text in zip(written, (table, json.dumps(report, indent=2) + "\n")):
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)  # atomically: a half-written table never replaces a whole one
    if os.environ.get("OUT"):
        for path in written:
            shutil.copy(path, Path(os.environ["OUT"]) / path.name)
    print(table)
    print(f"wrote {written[0]} and {written[1]}", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
