"""GPU memory on the tiny transformers, with the free memory forced (no GPU here): the plan takes more
savings as free memory falls, places the backend by them, and says so in one line (the CLI's output, the
API's warning); the peak GPU memory of an image is absent on a CPU everywhere it would show (metadata,
report, HTML, info) and shown the same way everywhere when there is one (a fake measurement)."""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
import torch

import adcli
import adcli.engine.memory as memory
from adcli.engine.memory import Peak, model_sizes, peak_memory, plan_for
from adcli.engine.models import load_backend
from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import pixels, run

CPU = torch.device("cpu")
PIXELS = 64 * 64
T2I = ["t2i", "a red house", "--style", "samples/style/hubble.jpg", "--size", "64x64", "--steps", "2",
       "--ad-iterations", "1", "--seed", "1"]


def savings(plan) -> tuple[int, ...]:
    """What a plan saves, each entry larger for more saving: encoders off, checkpointing, tiled VAE, blocks
    streamed, and where the encoders encode (0 beside the transformer, 1 with it aside, 2 on the CPU)."""
    encoding = 2 if plan.encode_on_cpu else 1 if plan.encode_aside else 0
    return (plan.text_encoders_off_gpu, plan.checkpointing, plan.vae_tiling, plan.group_offload, encoding)


@pytest.mark.parametrize("model", ["tiny-flux", "tiny-sd3"])
def test_less_free_memory_takes_more_savings(model):
    backend = load_backend(model, device=CPU, dtype=torch.float32)
    sizes = model_sizes(backend, PIXELS)
    everything = sizes.stored + sizes.text_encoders + sizes.vae + sizes.activations  # GB, all on the GPU
    # from twice what everything needs down to a hundredth of the weights alone, in steps of 1.5x
    free = [2 * everything / 1.5**i for i in range(30) if 2 * everything / 1.5**i > sizes.stored / 100]
    plans = [plan_for(backend, quantized=False, low_vram=True, pixels=PIXELS, free_gb=gb).plan for gb in free]
    chosen = [savings(plan) for plan in plans]
    assert chosen[0] == (0, 0, 0, 0, 0)  # everything fits
    assert chosen[-1] == (1, 1, 1, 1, 2)  # everything saved: blocks streamed, encoders on the CPU
    for more, fewer in zip(chosen[1:], chosen):
        assert all(a >= b for a, b in zip(more, fewer)), (fewer, more)
    assert len(set(chosen)) >= 4  # the steps between are taken one by one
    for gb, plan in zip(free, plans):  # a plan that does not stream fits in 90 % of the free memory
        assert plan.group_offload or plan.expected_gb <= 0.9 * gb
    # without low_vram a model that fits says nothing
    assert plan_for(backend, quantized=False, low_vram=False, pixels=PIXELS, free_gb=free[0]) is None
    assert plan_for(backend, quantized=False, low_vram=False, pixels=PIXELS, free_gb=None) is None  # a CPU


def test_a_plan_places_the_backend_and_the_picture_stays_the_same(tmp_path, monkeypatch):
    """The smallest plan (blocks streamed, encoders on the CPU, tiled VAE, checkpointing) changes where
    the work runs, not the result: the same picture as without it (64x64 is one VAE tile)."""
    backend = load_backend("tiny-flux", device=CPU, dtype=torch.float32, free_gb=1e-6)
    assert backend.encoders_offloaded and backend.encode_on_cpu and backend.vae_offloaded
    assert backend.vae.use_tiling and backend.denoiser.is_gradient_checkpointing
    assert "transformer blocks streamed from CPU memory" in backend.memory_note

    assert run(*T2I, "--model", "tiny-flux", "-o", tmp_path / "plain.png", "--quiet").exit_code == 0
    monkeypatch.setattr(memory, "free_gpu_gb", lambda device: 1e-6)  # as a GPU with almost nothing free
    result = run(*T2I, "--model", "tiny-flux", "-o", tmp_path / "planned.png")
    assert result.exit_code == 0, result.output
    note = [line for line in result.output.splitlines() if "GB free" in line]
    assert len(note) == 1 and note[0].startswith("the model does not fit the GPU as it is, so --low-vram chose: ")
    assert "transformer blocks streamed from CPU memory (slow)" in note[0] and "text encoders run on the CPU" in note[0]
    assert np.array_equal(pixels(tmp_path / "plain.png"), pixels(tmp_path / "planned.png"))


def test_the_api_warns_what_the_plan_chose(monkeypatch):
    monkeypatch.setattr(memory, "free_gpu_gb", lambda device: 1e-6)
    with pytest.warns(UserWarning, match=r"^the model does not fit the GPU as it is, so low_vram chose: .* GB free"):
        model = adcli.load_model("tiny-sd3", device="cpu")
    assert model.notes and "--" not in str(model.notes)
    monkeypatch.setattr(memory, "free_gpu_gb", lambda device: 1000.0)
    # (the tiny models' native size, when no run size is known)
    with pytest.warns(UserWarning, match=r"^low_vram: 1000 GB free for 64x64-pixel images: everything fits"):
        adcli.load_model("tiny-sd3", device="cpu", low_vram=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say: no warning
        assert adcli.load_model("tiny-sd3", device="cpu").notes == []


def test_no_peak_is_measured_on_a_cpu():
    with peak_memory(CPU) as peak:
        torch.ones(1000).sum()
    assert peak.gb is None


def _written(tmp_path, name: str, *extra: str) -> tuple[dict, dict, str, str]:
    """A tiny run's metadata, its report line, its HTML report and `adcli info` on it."""
    out = tmp_path / name
    for report in ("run.jsonl", "run.html"):
        result = run("texture", "-r", "samples/style/brick.jpg", "--model", "tiny", "--size", "64x64",
                     "--iterations", "2", "--quiet", "-o", out / "t.png", "--overwrite", "--report", out / report, *extra)
        assert result.exit_code == 0, result.output
    metadata = read_metadata(out / "t.png")
    line = json.loads((out / "run.jsonl").read_text().splitlines()[-1])
    return metadata, line, (out / "run.html").read_text(), run("info", out / "t.png").stdout


def test_peak_memory_is_absent_on_a_cpu_and_shown_the_same_way_everywhere_when_measured(tmp_path, monkeypatch):
    metadata, line, html, info = _written(tmp_path, "cpu")
    assert "peak_gpu_memory_gb" not in metadata and "peak_gpu_memory_gb" not in line
    assert "peak GPU memory" not in html and "peak GPU memory" not in info

    @contextmanager
    def measured(device):  # what a GPU would have measured
        peak = Peak()
        yield peak
        peak.gb = 3.14159

    monkeypatch.setattr(memory, "peak_memory", measured)
    metadata, line, html, info = _written(tmp_path, "gpu")
    assert metadata["peak_gpu_memory_gb"] == 3.14 and line["peak_gpu_memory_gb"] == 3.14
    assert "peak GPU memory" in html and "3.14 GB" in html
    assert [row.split() for row in info.splitlines() if "peak GPU memory" in row] == [["peak", "GPU", "memory", "3.14", "GB"]]
