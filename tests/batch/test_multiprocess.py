"""Two CPU processes through `accelerate launch` (gloo): the job list is split with no job twice and
none missing; each process writes its own outputs; the main process prints the one summary. Then
`torchrun` resumes a longer list over the same folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import image, report_lines

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

COUNT = 5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_cover_every_job_once_and_torchrun_resumes(tmp_path):
    reference = image(tmp_path / "ref.png", seed=3)
    out, report = tmp_path / "out", tmp_path / "run.jsonl"
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), "-m", "adcli",
    ]
    command = [
        "texture", "-r", str(reference), "--num-images", str(COUNT), "--model", "tiny", "--size", "64x64",
        "--iterations", "2", "--batch-size", "2", "-o", str(out), "--report", str(report),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(launch + command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    lines = report_lines(report)
    assert sorted(line["index"] for line in lines) == list(range(COUNT))
    assert all(line["status"] == "done" and line["rank"] == line["index"] % 2 for line in lines)
    assert sorted(p.name for p in out.iterdir()) == [f"ref_texture_{i}.png" for i in range(COUNT)]
    assert sorted(done.stdout.split()) == sorted(str(out / f"ref_texture_{i}.png") for i in range(COUNT))
    assert done.stderr.count("time per image") == 1  # one summary, from the main process
    seeds = {read_metadata(out / name)["seed"] for name in os.listdir(out)}
    assert len(seeds) == COUNT

    more = [str(part) for part in command]
    more[more.index("--num-images") + 1] = str(COUNT + 2)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()), "-m", "adcli"]
    resumed = subprocess.run(torchrun + more + ["--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    statuses = {line["index"]: line["status"] for line in report_lines(report)}
    assert statuses == {**{i: "skipped" for i in range(COUNT)}, COUNT: "done", COUNT + 1: "done"}
    assert len(os.listdir(out)) == COUNT + 2
