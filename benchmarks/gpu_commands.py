"""Step 1 of ``make gpu-check``: every adcli command, run as a user runs it (``python -m adcli …``).

Each command is a subprocess on the tiny models, so that a broken import, option or device path
fails here exactly as it would for a user. A command passes when it exits 0 within its time
budget and every image it was asked for exists, has the requested size and is a picture: not
one flat colour and not mostly black (what NaN pixels become once cast to 8 bits). The engine
itself stops with a non-zero exit when the loss stops being finite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CONTENT, STYLE = SAMPLES / "content" / "astronaut.jpg", SAMPLES / "style" / "hubble.jpg"


@dataclass(frozen=True)
class Command:
    """One CLI invocation and what it must write (paths relative to the work folder)."""

    name: str
    args: tuple[str, ...]  # after ``python -m adcli``
    images: tuple[tuple[str, int, int], ...] = ()  # (path, or a glob once per image, width, height)
    folder: str = ""  # a folder it must create (finetune-vae)
    budget_s: float = 60.0
    after: str = ""  # the command whose output this one reads: both run in order, in one job


@dataclass
class CommandResult:
    name: str
    ok: bool
    seconds: float
    exit_code: int | None  # None: killed at its budget
    problem: str = ""
    images: list[dict] = field(default_factory=list)  # path, size, mean, std of each image checked


def commands(device: str, size: int, iterations: int, steps: int, compile_budget_s: float) -> list[Command]:
    """Every command once on the tiny models; bf16 everywhere but one fp16 run (fp32 on a CPU)."""
    s = f"{size}x{size}"
    common = ("--device", device, "--dtype", "bf16", "--quiet", "--seed", "7")
    tiny = ("--model", "tiny", "--size", s, *common)
    opt = ("--iterations", str(iterations))
    sample = ("--steps", str(steps))
    square = lambda name: ((name, size, size),)  # noqa: E731
    ref = ("--reference", str(SAMPLES / "style" / "brick.jpg"))
    xl = ("--model", "tiny-sdxl", "--size", s, *common, *sample)
    return [
        Command("style-transfer", ("style-transfer", str(CONTENT), "--style", str(STYLE), *tiny, *opt, "-o", "st.png"),
                square("st.png")),
        Command("appearance", ("appearance", str(SAMPLES / "content" / "coffee.jpg"), "--appearance",
                               str(SAMPLES / "style" / "gravel.jpg"), *tiny, *opt, "-o", "app.png"), square("app.png")),
        Command("texture (optimize)", ("texture", *ref, *tiny, *opt, "-o", "tex.png"), square("tex.png")),
        Command("texture (sample, fp16)", ("texture", *ref, "--mode", "sample", *tiny, "--dtype", "fp16", *sample,
                                           "-o", "tex-sample.png"), square("tex-sample.png")),
        Command("texture (label maps)", (  # the target map is 3:2, and so is the output
            "texture", "--reference", str(SAMPLES / "masks" / "source_texture.png"),
            "--source-mask", str(SAMPLES / "masks" / "source_labels.png"),
            "--target-mask", str(SAMPLES / "masks" / "target_labels.png"), *tiny, "--size", f"{3 * size // 2}x{size}",
            *opt, "-o", "tex-masked.png"), (("tex-masked.png", 3 * size // 2, size),)),
        Command("texture (tiled)", ("texture", *ref, "--tile", "xy", *tiny, *opt, "-o", "tex-tiled.png"),
                square("tex-tiled.png")),
        Command("t2i (tiny-sdxl)", ("t2i", "a lighthouse at dusk", "--style", str(STYLE), *xl, "-o", "t2i.png"),
                square("t2i.png")),
        Command("t2i --layout", ("t2i", "a lighthouse", "--style", str(STYLE), "--layout", str(CONTENT),
                                 "--strength", "0.6", *xl, "-o", "t2i-layout.png"), square("t2i-layout.png")),
        Command("t2i --controlnet", ("t2i", "a lighthouse", "--style", str(STYLE), "--controlnet", "tiny",
                                     "--control", "control.png", *xl, "-o", "t2i-control.png"),
                square("t2i-control.png")),
        Command("expand", ("expand", *ref, "--model", "tiny", "--size", f"{2 * size}x{size}", *common, *sample,
                           "--window", "8", "-o", "expand.png"), (("expand.png", 2 * size, size),)),
        Command("finetune-vae", ("finetune-vae", str(SAMPLES / "style" / "brick.jpg"), "--model", "tiny",
                                 "--steps", "5", "--crop-size", str(size), "--device", device, "--quiet",
                                 "-o", "vae"), folder="vae"),
        Command("texture --vae", ("texture", *ref, "--vae", "vae", *tiny, *opt, "-o", "tex-vae.png"),
                square("tex-vae.png"), after="finetune-vae"),
        Command("style-transfer --batch-size 2", (
            "style-transfer", str(CONTENT), str(SAMPLES / "content" / "chelsea.jpg"), "--style", str(STYLE),
            *tiny, *opt, "--batch-size", "2", "-o", "batch"), (("batch/*.png", size, size),) * 2),
        Command("style-transfer --low-vram", ("style-transfer", str(CONTENT), "--style", str(STYLE), *tiny, *opt,
                                              "--low-vram", "-o", "low-vram.png"), square("low-vram.png")),
        Command("style-transfer --compile", ("style-transfer", str(CONTENT), "--style", str(STYLE), *tiny, *opt,
                                             "--compile", "-o", "compile.png"), square("compile.png"),
                budget_s=compile_budget_s),
    ]


def image_problem(path: Path, width: int, height: int) -> tuple[str, dict]:
    """What is wrong with the image at ``path`` ("" when nothing), and its statistics."""
    with Image.open(path) as image:
        found = image.size
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    stats = {"path": path.name, "size": list(found), "mean": round(float(pixels.mean()), 2),
             "std": round(float(pixels.std()), 2), "black": round(float((pixels.max(axis=-1) == 0).mean()), 4)}
    if found != (width, height):
        return f"{path.name} is {found[0]}x{found[1]}, not {width}x{height}", stats
    if not np.isfinite(pixels).all() or stats["std"] < 1.0:
        return f"{path.name} is one flat colour (mean {stats['mean']}, std {stats['std']})", stats
    if stats["black"] > 0.5:
        return f"{path.name} is {100 * stats['black']:.0f}% black pixels (NaN in the decoded latent?)", stats
    return "", stats


def _check_outputs(command: Command, work: Path) -> tuple[str, list[dict]]:
    """Every image the command should have written, checked; a glob must match as many as listed."""
    checked, problems = [], []
    if command.folder and not (work / command.folder / "config.json").is_file():
        problems.append(f"no VAE folder {command.folder}/ with a config.json")
    for pattern in dict.fromkeys(p for p, _, _ in command.images):
        wanted = [(w, h) for p, w, h in command.images if p == pattern]
        found = sorted(work.glob(pattern)) if "*" in pattern else [work / pattern] * (work / pattern).is_file()
        if len(found) != len(wanted):
            problems.append(f"{len(found)} images at {pattern}, not {len(wanted)}")
            continue
        for path, (width, height) in zip(found, wanted):
            problem, stats = image_problem(path, width, height)
            checked.append(stats)
            if problem:
                problems.append(problem)
    return "; ".join(problems), checked


def run_command(command: Command, python: str, work: Path, env: dict, deadline: float) -> CommandResult:
    """Run one command as a subprocess in ``work`` and check what it wrote."""
    budget = max(1.0, min(command.budget_s, deadline - time.monotonic()))
    started = time.monotonic()
    try:
        done = subprocess.run([python, "-m", "adcli", *command.args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        return CommandResult(command.name, False, time.monotonic() - started, None, f"over its {budget:.0f} s budget")
    last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    return _finish(command, work, time.monotonic() - started, done.returncode, last)


def run_in_this_process(command: Command, work: Path) -> CommandResult:
    """Run one command through adcli's entry point in this process: the CLI as a user meets it
    but for the interpreter's start and imports (seconds each on a small CPU)."""
    from adcli.cli.app import main

    argv, cwd = sys.argv, Path.cwd()
    sys.argv = ["adcli", *command.args]
    started = time.monotonic()
    code = 0
    try:
        os.chdir(work)
        main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = argv
        os.chdir(cwd)
    return _finish(command, work, time.monotonic() - started, code, "see the messages above")


def _finish(command: Command, work: Path, seconds: float, code: int, message: str) -> CommandResult:
    if code != 0:
        return CommandResult(command.name, False, seconds, code, f"exit {code}: {message}")
    problem, images = _check_outputs(command, work)
    return CommandResult(command.name, not problem, seconds, 0, problem, images)


def run_commands(
    todo: Sequence[Command], python: str, work: Path, budget_s: float, jobs: int, in_process: bool = False,
    on_result: Callable[[CommandResult], None] | None = None,
) -> list[CommandResult]:
    """Run ``todo`` as subprocesses ``jobs`` at a time (a command with ``after`` runs behind that
    one), or one after another in this process; results in ``todo``'s order."""
    work.mkdir(parents=True, exist_ok=True)
    _control_image(work / "control.png", todo)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny models: one thread each is as fast, and jobs run side by side
    deadline = time.monotonic() + budget_s
    chains = [[c] + [d for d in todo if d.after == c.name] for c in todo if not c.after]

    lock = threading.Lock()

    def run_chain(chain: list[Command]) -> list[CommandResult]:
        results = []
        for command in chain:
            if results and not results[-1].ok:
                results.append(CommandResult(command.name, False, 0.0, None, f"not run: {results[-1].name} failed"))
            elif in_process:
                results.append(run_in_this_process(command, work))
            else:
                results.append(run_command(command, python, work, env, deadline))
            if on_result is not None:
                with lock:
                    on_result(results[-1])
        return results

    if in_process:
        finished = [r for chain in chains for r in run_chain(chain)]
    else:
        # the slowest commands first, so that they do not start last and stretch the step
        chains.sort(key=lambda chain: -sum(c.budget_s for c in chain))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            finished = [r for rs in pool.map(run_chain, chains) for r in rs]
    order = {c.name: i for i, c in enumerate(todo)}
    return sorted(finished, key=lambda r: order[r.name])


def _control_image(path: Path, todo: Sequence[Command]) -> None:
    """A ControlNet conditioning image exactly the output size (an edge-like grid)."""
    for command in todo:
        if "--control" in command.args:
            _, width, height = command.images[0]
            grid = np.zeros((height, width, 3), dtype=np.uint8)
            grid[::8] = grid[:, ::8] = 255
            Image.fromarray(grid).save(path)
            return


if __name__ == "__main__":  # a quick look: python -m benchmarks.gpu_commands [cpu|cuda]
    device = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    todo = commands(device, 64, 5, 2, 120)
    for r in run_commands(todo, sys.executable, Path("outputs/gpu-commands"), 600, 2, in_process=device == "cpu"):
        print(f"{'ok ' if r.ok else 'BAD'} {r.seconds:5.1f}s {r.name} {r.problem}")
