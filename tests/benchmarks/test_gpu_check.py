"""`make gpu-check DEVICE=cpu`: the GPU check's three steps run on a CPU at tiny sizes, so that the
script a GPU session runs in one call cannot rot between those sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.gpu_check import KEY_ROWS
from benchmarks.transformer_rows import ROWS
from benchmarks.gpu_commands import commands, image_problem

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_on_a_cpu_runs_every_step_and_writes_its_table(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("OUT", None)
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--out-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "RESULTS.json").read_text())
    steps = {s["step"]: s for s in report["steps"]}
    assert report["ok"] and list(steps) == ["commands", "cuda-tests", "benchmark", "transformers"]
    assert [r["name"] for r in steps["commands"]["records"]] == [c.name for c in commands("cpu", 64, 5, 2, 60)]
    assert all(r["ok"] and r["exit_code"] == 0 for r in steps["commands"]["records"])
    assert sum(len(r["images"]) for r in steps["commands"]["records"]) == 15  # finetune-vae writes a folder, the batch two
    assert {r["outcome"] for r in steps["cuda-tests"]["records"]} == {"skipped"}  # no CUDA here
    rows = steps["benchmark"]["records"]
    assert [(r["task"], r["arch"], r["impl"], r["variant"]) for r in rows] == list(KEY_ROWS)
    assert all(r["wall_s"] > 0 and r["tflop"] > 0 for r in rows)
    assert rows[0]["speedup"] == rows[1]["wall_s"] / rows[0]["wall_s"]  # engine vs baseline, same run
    transformer_rows = steps["transformers"]["records"]
    assert [r["name"] for r in transformer_rows] == [row.name for row in ROWS]
    measured = [r for r in transformer_rows if "skipped" not in r]
    assert not any("error" in r for r in transformer_rows)
    # every row runs here but int8 without torchao (not in the test extra)
    assert {r["weights"] for r in measured} >= {"bf16", "q8_0", "q4_k"}
    assert all(r["s_per_step"] > 0 and r["peak_gb"] is None for r in measured)  # no GPU memory on a CPU
    assert all(r["extrapolated_s"] == pytest.approx(r["s_per_step"] * r["steps"] + r["decode_s"]) for r in measured)
    assert all(r["psnr_db"] > 20 for r in measured if r["weights"] in ("q8_0", "q4_k"))
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| flux q4_k 512² on 12 GB |" in table and "Q4_K GGUF in place of nf4" in table
    assert f"torch {report['meta']['torch']}" in table and "CUDA —" in table and "**PASSED**" in table
    assert table in done.stdout  # and printed


def test_image_check_catches_wrong_size_flat_and_black_images(tmp_path):
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    mostly_black = picture.copy()
    mostly_black[:24] = 0  # what NaN pixels become once cast to 8 bits
    cases = {"ok.png": (picture, ""), "flat.png": (np.full_like(picture, 128), "flat colour"),
             "black.png": (mostly_black, "black pixels")}
    for name, (array, expected) in cases.items():
        Image.fromarray(array).save(tmp_path / name)
        problem, stats = image_problem(tmp_path / name, 48, 32)
        assert expected in problem and bool(problem) == bool(expected), (name, problem)
    assert "not 64x64" in image_problem(tmp_path / "ok.png", 64, 64)[0]
