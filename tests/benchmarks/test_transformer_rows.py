"""The FLUX.1/SD3.5 rows of `make gpu-check`: GGUF blocks made in memory, PSNR, and how rows that
fail, run out of time or were never reached are reported (the rows themselves run in test_gpu_check)."""

from __future__ import annotations

import math

import gguf
import numpy as np
import pytest
import torch

from benchmarks.gguf_weights import q4_k_blocks, q8_0_blocks, quantize_linears
from benchmarks.transformer_report import markdown_rows, with_missing_rows
from benchmarks.devices import psnr
from benchmarks.transformer_rows import ROWS, run_rows
from tests.support import kquants

Q = gguf.GGMLQuantizationType


def weights(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 0.05


def test_q8_0_blocks_are_gguf_py_s():
    w = weights(6, 512)
    assert np.array_equal(q8_0_blocks(w).numpy(), gguf.quants.quantize(w.numpy(), Q.Q8_0))


def test_q4_k_blocks_are_the_test_files_and_read_back_close():
    w = weights(4, 768)
    blocks = q4_k_blocks(w).numpy()
    assert blocks.shape == (4, 3 * 144)
    assert np.array_equal(blocks, kquants.quantize_q4_k(w.numpy()).reshape(4, -1))
    back = gguf.quants.dequantize(blocks, Q.Q4_K).reshape(4, 768)
    # 4 bits over each 32 values' range (≈ 6σ of 0.05): a step of ≈ 0.02, half of it at most
    assert np.abs(back - w.numpy()).max() < 0.015


def test_quantize_linears_gives_what_a_gguf_file_loads():
    """Large linears become GGUFLinear computing with the blocks' dequantized weights (read back by
    gguf-py's own dequantizer); a row 256 does not divide falls back from Q4_K to Q8_0, one that 32 does
    not divide either to F16; a linear of ≤ 1024 values stays F32."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.Linear(48, 32), torch.nn.Linear(32, 16))
    plain = [layer.weight.detach().clone() for layer in model]
    x = torch.randn(3, 64)
    types = quantize_linears(model, "q4_k", torch.float32)
    assert types == {"0": "Q8_0", "1": "F16", "2": "F32"}
    assert type(model[0]).__name__ == "GGUFLinear" and type(model[2]) is torch.nn.Linear
    expected = x
    read_back = {"0": lambda w: gguf.quants.dequantize(gguf.quants.quantize(w.numpy(), Q.Q8_0), Q.Q8_0).copy(),
                 "1": lambda w: w.numpy().astype(np.float16).astype(np.float32), "2": lambda w: w.numpy()}
    for (name, layer), w in zip(model.named_children(), plain):
        w = torch.from_numpy(read_back[name](w))
        expected = expected @ w.reshape(layer.out_features, layer.in_features).T + layer.bias
    # diffusers multiplies a Q8_0 block's fp16 scale by its int8 values in fp16: each weight rounded to
    # half precision (2⁻¹¹ relative), where gguf-py computes in fp32
    torch.testing.assert_close(model(x), expected, rtol=2e-3, atol=5e-4)


def test_psnr_of_a_known_difference():
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.8
    assert psnr(image + 0.1, image) == pytest.approx(20.0)  # MSE 0.01 of a [0, 1] image
    assert math.isinf(psnr(image, image))


def test_rows_out_of_time_are_skipped_with_a_note_and_unreached_rows_listed():
    found = []
    run_rows(torch.device("cpu"), 0.0, found.append)
    assert [r["name"] for r in found] == [row.name for row in ROWS]
    assert all("skipped" in r and "error" not in r for r in found)
    assert {r["skipped"] for r in found if r["weights"] != "int8"} == {"not started: the step's time was nearly spent"}
    filled = with_missing_rows(found[:2], "stopped at its 170 s budget")
    assert [r["name"] for r in filled] == [row.name for row in ROWS]
    assert filled[-1]["skipped"] == "not reached (stopped at its 170 s budget)"


def test_table_judges_goals_and_reports_failures():
    row = {"name": "flux q8_0 512² on 16 GB", "peak_gb": 17.2, "reserved_gb": 18.0, "tflops_per_s": 400.0,
           "peak_percent": 40.4, "goal_gb": 16, "s_per_step": 0.8, "measured_steps": 3,
           "extrapolated_s": 40.5, "steps": 50, "ad_iterations": 2, "goal_s": 45, "psnr_db": 41.23,
           "plan": "16 GB free: gradient checkpointing", "note": ""}
    failed = {"name": "flux int8 512² on 16 GB", "error": "RuntimeError: out of memory", "note": ""}
    lines = markdown_rows([row, failed], judged=True)
    assert ("| flux q8_0 512² on 16 GB | 17.2 (18.0) | ≤ 16 GB ❌ | 0.80 (3) | 40.5 s (50×2) | ≤ 45 s ✅ | 400 (40 %) | "
            "41.2 dB | 16 GB free: gradient checkpointing |  |") in lines
    assert "| flux int8 512² on 16 GB | FAILED: RuntimeError: out of memory | | | | | | | |  |" in lines


@pytest.mark.slow
def test_full_size_rows_run_end_to_end_on_shallow_published_architectures(monkeypatch):
    """The GPU's path — the published FLUX.1/SD3.5 configs built with random weights, quantized, planned
    for the row's card and measured — on a CPU, with the transformers cut to 7 attention layers and 128
    wide (the VAE and every other setting as published): every row gives figures, the quantized ones a
    picture close to, and not the same as, the bf16 one."""
    from adcli.engine.archs.flux import Flux
    from adcli.engine.archs.sd3 import SD3

    for key, value in dict(num_layers=2, num_single_layers=5, num_attention_heads=1).items():
        monkeypatch.setitem(Flux.published_configs["transformer"], key, value)
    for key, value in dict(num_layers=4, dual_attention_layers=(0, 1, 2), num_attention_heads=2,
                           caption_projection_dim=128).items():
        monkeypatch.setitem(SD3.published_configs["transformer"], key, value)
    found = []
    run_rows(torch.device("cpu"), 600.0, found.append, models="full")
    assert [r["name"] for r in found] == [row.name for row in ROWS]
    assert not [r for r in found if "error" in r], [r["error"] for r in found if "error" in r]
    measured = [r for r in found if "skipped" not in r]
    assert all(r["s_per_step"] > 0 and r["plan"].startswith(f"{r['card_gb']:.0f} GB free: ") for r in measured)
    assert all(r["tflop_per_step"] > 0 for r in measured if r["weights"] == "bf16")
    quantized = [r for r in measured if r["weights"] != "bf16"]
    assert quantized and all(15 < r["psnr_db"] < 150 for r in quantized)
    # the plan counts SD3.5's released text encoders (11.1 GB): on a 12 GB card they leave the GPU
    sd3 = next(r for r in measured if r["arch"] == "sd3")
    assert sd3["card_gb"] == 12 and "text encoders off the GPU" in sd3["plan"]


@pytest.mark.slow
@pytest.mark.parametrize("arch, weights", [("flux", "q8_0"), ("sd3", "q4_k"), ("flux", "int8")])
def test_a_row_planned_for_a_small_card_gives_the_picture_it_gives_without_the_plan(arch, weights):
    """What the GPU's small-card rows do — encoders off the GPU, per-block checkpointing through GGUF or
    int8 linears, tiled VAE — on a tiny model: the AD gradients flow through the recomputed quantized
    blocks and the picture is the one the unplanned model makes."""
    from adcli.engine.archs.memory_plan import MemoryPlan
    from adcli.engine.memory import apply_plan
    from benchmarks.devices import torchao_available
    from benchmarks.transformer_rows import TransformerRow, build, measure

    if weights == "int8" and not torchao_available():
        pytest.skip("torchao is not installed")
    row = TransformerRow(arch, 512, weights, 8)
    _, plain = measure(build(arch, weights, torch.device("cpu"), "tiny"), row, 64, 2)
    backend = build(arch, weights, torch.device("cpu"), "tiny")
    apply_plan(backend, MemoryPlan(text_encoders_off_gpu=True, checkpointing=True, vae_tiling=True))
    assert backend.denoiser.is_gradient_checkpointing
    figures, planned = measure(backend, row, 64, 2)
    assert figures["s_per_step"] > 0 and planned.shape == plain.shape == (1, 3, 64, 64)
    assert 0.05 < planned.std() and psnr(planned, plain) > 60  # the same picture, up to float rounding
