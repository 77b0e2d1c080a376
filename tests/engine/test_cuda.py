"""What only a CUDA GPU can show (marker ``cuda``; skipped without one, run by ``make gpu-check``):
bf16 agrees with fp32, a seed gives the same pixels twice, the AD loss runs on a fused attention
kernel, the optimization loop never waits for the GPU but for its throttled loss read-back, and the
VAE stays fp32.

The engine is called in one place, :func:`distill`, so that a change of its signature is one edit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.cases import counting_syncs

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by make gpu-check)"),
]

CUDA = torch.device("cuda")
LAYERS = (-6, -5, -4, -3, -2, -1)
# bf16 keeps 8 bits of mantissa: the UNet's features and so the AD loss move by a few parts in a
# thousand against fp32 on the tiny models (measured in bf16 on a CPU: under 0.5 %); 5 % leaves room
# for the GPU's kernels without hiding a bug.
BF16_REL_TOLERANCE = 0.05


def backend(dtype: torch.dtype):
    from adcli.engine.models import load_backend

    return load_backend("tiny", device=CUDA, dtype=dtype)


def latents(seed: int, side: int = 16) -> torch.Tensor:
    return torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(seed))


def distill(model, iterations: int, report_every: int) -> tuple[torch.Tensor, list[float]]:
    """Style transfer by optimization (Algorithm 1) on ``model``; returns the latent and the losses read back."""
    from adcli.engine.distill import distill_by_optimization
    from adcli.engine.features import Guide

    style, content = latents(1), latents(2)
    seen: list[float] = []
    z = distill_by_optimization(
        model, content + 0.3 * latents(3), Guide(style, content, 0.25), layers=LAYERS, iterations=iterations,
        lr=0.05, report_every=report_every,
        callback=lambda info: seen.append(info["loss"]) if info["loss"] is not None else None,
    )
    return z, seen


def test_bf16_losses_agree_with_fp32():
    _, fp32 = distill(backend(torch.float32), iterations=4, report_every=1)
    _, bf16 = distill(backend(torch.bfloat16), iterations=4, report_every=1)
    assert all(np.isfinite(bf16)) and all(loss > 0 for loss in fp32)
    assert bf16 == pytest.approx(fp32, rel=BF16_REL_TOLERANCE)


def test_same_seed_gives_identical_pixels_twice(tmp_path, cli, images):
    content, style = images
    pixels = []
    for name in ("first.png", "second.png"):
        out = tmp_path / name
        result = cli("style-transfer", content, "--style", style, "--model", "tiny", "--size", "64x64",
                     "--iterations", "8", "--device", "cuda", "--dtype", "bf16", "--seed", "3", "--quiet", "-o", out)
        assert result.exit_code == 0, result.output
        pixels.append(np.asarray(Image.open(out)))
    assert pixels[0].std() > 0
    assert np.array_equal(pixels[0], pixels[1])


FUSED = ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
         "_scaled_dot_product_cudnn_attention")


def attention_kernels(fn) -> set[str]:
    """The SDPA implementations (aten ops) that ``fn`` dispatched to."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        fn()
        torch.cuda.synchronize()
    return {e.name for e in profile.events() if "scaled_dot_product" in e.name and e.name != "aten::scaled_dot_product_attention"}


def test_ad_loss_in_bf16_runs_on_a_fused_attention_kernel():
    from adcli.losses import ad_loss

    # SD1.5's last self-attention layers at 512²: 8 heads of 40 over 64×64 tokens.
    q, k, v, ref_k, ref_v = (torch.randn(1, 8, 4096, 40, device=CUDA, dtype=torch.bfloat16) for _ in range(5))
    q.requires_grad_(True)
    kernels = attention_kernels(lambda: ad_loss(q, k, v, ref_k, ref_v).backward())
    assert any(f in name for name in kernels for f in FUSED), kernels
    assert not any("math" in name for name in kernels), kernels
    # and inside the engine, through the capture processors, on the tiny model
    engine = attention_kernels(lambda: distill(backend(torch.bfloat16), iterations=2, report_every=2))
    assert any(f in name for name in engine for f in FUSED) and not any("math" in n for n in engine), engine


def test_optimization_loop_waits_for_the_gpu_only_to_read_the_loss():
    model = backend(torch.bfloat16)
    distill(model, iterations=8, report_every=8)  # warm-up: first-call allocations and lazy set-up
    syncs = {}
    for iterations, report_every in ((8, 8), (16, 16), (16, 4)):
        found: list = []
        with counting_syncs(CUDA, found):
            distill(model, iterations, report_every)
        syncs[iterations, report_every] = len(found)
    # twice the iterations, one read-back each: no more waits (none per iteration)
    assert syncs[16, 16] == syncs[8, 8], syncs
    # a read-back every 4 iterations: 3 more than one at the end, one wait each
    assert syncs[16, 4] == syncs[16, 16] + 3, syncs


def test_vae_stays_fp32_under_bf16():
    model = backend(torch.bfloat16)
    assert next(model.denoiser.parameters()).dtype == torch.bfloat16
    assert {p.dtype for p in model.vae.parameters()} == {torch.float32}
    pixels = model.decode_latents(latents(4).to(CUDA))
    assert pixels.dtype == torch.float32 and torch.isfinite(pixels).all()
