"""Ctrl-C in the middle of a batch (a real process and a real SIGINT), then --resume: every output
present exactly once, none half-written or corrupt."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import image, pixels, report_lines, run

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

COUNT = 5
ARGS = ["--num-images", str(COUNT), "--model", "tiny", "--size", "64x64", "--iterations", "6"]


def start(reference, out, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "adcli", "texture", "-r", str(reference), "-o", str(out), *ARGS, *map(str, extra)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_first_image(process) -> str:
    line = process.stdout.readline()
    assert line.strip().endswith(".png"), (line, process.stderr.read() if process.poll() is not None else "")
    return line.strip()


def assert_complete_outputs(out, expected: int) -> None:
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(".") or not n.endswith(".png")], names  # no temporary files
    assert len(names) == expected, names
    for name in names:
        assert read_metadata(out / name)["task"] == "texture"
        assert pixels(out / name).shape == (64, 64, 3)


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c-once-finishes-the-image", "ctrl-c-twice-stops-at-once"])
def test_interrupt_then_resume_makes_every_output_exactly_once(tmp_path, presses):
    reference = image(tmp_path / "ref.png", seed=3)
    out = tmp_path / "out"
    page = tmp_path / "live.html"
    process = start(reference, out, "--report", page)
    try:
        wait_for_first_image(process)
        process.send_signal(signal.SIGINT)
        if presses == 2:
            time.sleep(0.1)
            process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    if presses == 1:
        assert "stopping after the current image" in stderr
    made = len(list(out.glob("*.png")))
    assert 1 <= made < COUNT
    assert_complete_outputs(out, made)
    # the HTML report is whole after the interrupt: every job once, the made ones done, the rest not run
    markup = page.read_text(encoding="utf-8")
    assert markup.rstrip().endswith("</html>")
    statuses = re.findall(r'<section class="job ([\w-]+)"', markup)
    assert len(statuses) == COUNT and statuses.count("done") == made and "http-equiv" not in markup

    report = tmp_path / "run.jsonl"
    resumed = run("texture", "-r", reference, "-o", out, "--resume", "--report", report, *ARGS)
    assert resumed.exit_code == 0, resumed.output
    statuses = [line["status"] for line in report_lines(report)]
    assert statuses.count("skipped") == made and statuses.count("done") == COUNT - made
    assert_complete_outputs(out, COUNT)
    assert sorted(p.name for p in out.iterdir()) == [f"ref_texture_{i}.png" for i in range(COUNT)]


def test_a_ctrl_c_while_the_process_exits_keeps_the_runs_exit_code(tmp_path):
    """The run is done and reported; a Ctrl-C during the interpreter's shutdown (unloading torch
    takes a moment) once ended the process by SIGINT (-2) instead of its own exit code 0."""
    reference = image(tmp_path / "ref.png", seed=3)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "adcli", "texture", "-r", str(reference), "-o", str(tmp_path / "out"), "--model", "tiny",
               "--size", "32x32", "--iterations", "2", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_first_image(process)  # the only image: the run is over
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
