"""`make bench`: the literal baseline computes the engine's losses, the speed options keep results,
and the CPU benchmark writes its table."""

from __future__ import annotations

import json
from dataclasses import replace
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from adcli.engine.config import ExpansionConfig, SamplingConfig
from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.lowvram import low_vram
from adcli.engine.models import load_backend
from adcli.engine.multidiffusion import expand_by_sampling, windows
from adcli.engine.sampler import distill_by_sampling, negative_conditioning, text_denoiser
from benchmarks.archs import meta_denoiser
from benchmarks.baseline import literal_algorithm1, literal_algorithm2, literal_multidiffusion, views
from benchmarks.cases import Case, Measurement
from benchmarks.report import make_rows, markdown

LAYERS = (-6, -5, -4, -3, -2, -1)
ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture(scope="module")
def sd15():
    return load_backend("tiny", device=torch.device("cpu"), dtype=torch.float32)


def latents(seed: int, side: int = 8) -> torch.Tensor:
    return torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(seed))


def inputs(with_content: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(style, content, init). The init is not the content latent itself: there the content loss
    sits at the kink of |q − q_content|, where the sign of its gradient is last-bit rounding, and
    Adam's first step (±lr per element) would turn that noise into visible differences."""
    style, content = latents(1), latents(2) if with_content else None
    init = (content if content is not None else 0) + 0.3 * latents(3)
    return style, content, init


def engine_losses(backend, init, guide, iterations=4, **options) -> tuple[torch.Tensor, list[float]]:
    losses = []
    z = distill_by_optimization(
        backend, init, guide, layers=LAYERS, iterations=iterations, lr=0.05, report_every=1,
        callback=lambda info: losses.append(info["loss"]), **options,
    )
    return z, losses


def assert_same_losses(expected: list[float], actual: list[float]) -> None:
    """Same losses up to float rounding (batched and separate passes sum in different orders)."""
    assert len(expected) == len(actual)
    assert actual == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("task", ["style-transfer", "texture"])
def test_baseline_gives_the_engines_losses(sd15, task):
    style, content, init = inputs(with_content=task == "style-transfer")
    weight = 0.25 if content is not None else 0.0
    _, baseline = literal_algorithm1(
        sd15, init, style, content, layers=LAYERS, iterations=4, lr=0.05, content_weight=weight
    )
    _, engine = engine_losses(sd15, init, Guide(style, content, weight))
    assert all(loss > 0 for loss in baseline)
    assert_same_losses(baseline, engine)


def test_baseline_gives_the_engines_losses_on_sdxl():
    backend = load_backend("tiny-sdxl", device=torch.device("cpu"), dtype=torch.float32)
    style, content, init = inputs()
    _, baseline = literal_algorithm1(
        backend, init, style, content, layers=LAYERS, iterations=3, lr=0.05, content_weight=0.25
    )
    _, engine = engine_losses(backend, init, Guide(style, content, 0.25), iterations=3)
    assert_same_losses(baseline, engine)


@pytest.mark.slow
@pytest.mark.parametrize("arch, adain", [("tiny", False), ("tiny-sdxl", True)])
def test_literal_algorithm2_gives_the_engines_losses_and_latents(sd15, arch, adain):
    """Same seed, same per-step losses and final latent: texture sampling (no prompt) on SD1.5,
    text-to-image with CFG and AdaIN on SDXL."""
    backend = sd15 if arch == "tiny" else load_backend(arch, device=torch.device("cpu"), dtype=torch.float32)
    if arch == "tiny":
        denoise = text_denoiser(backend, backend.encode_prompts([""]))
    else:
        denoise = text_denoiser(backend, backend.encode_prompts(["a cat"]), negative_conditioning(backend, ""), 7.0)
    config = SamplingConfig(steps=3, ad_iterations=2, lr=0.05, layers=LAYERS, adain=adain)
    expected, baseline = literal_algorithm2(
        backend, denoise, latents(1), config, size=(64, 64), generator=torch.Generator().manual_seed(4)
    )
    engine = []
    actual = distill_by_sampling(
        backend, denoise, Guide(latents(1)), config, size=(64, 64), generator=torch.Generator().manual_seed(4),
        callback=lambda info: engine.append(info["loss"]) if info["ad_iteration"] == 2 else None,
    )
    assert [len(step) for step in baseline] == [2, 2, 2] and all(x > 0 for step in baseline for x in step)
    assert_same_losses([step[-1] for step in baseline], engine)  # the engine reports each step's last
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_literal_multidiffusion_gives_the_engines_losses_and_latents(sd15):
    """Six overlapping windows (128×96 px, window 8, stride 4): one window per engine batch gives
    the same per-window losses and latent; batched windows the same latent as one at a time."""
    reference = latents(1)
    config = ExpansionConfig(steps=2, ad_iterations=2, lr=0.05, layers=LAYERS, adain=True, window=8, stride=4)
    assert [(w.top, w.left, w.height, w.width) for w in windows(12, 16, 8, 4)] == views(12, 16, 8, 4)
    expected, baseline = literal_multidiffusion(
        sd15, text_denoiser(sd15, sd15.encode_prompts([""])), reference, config,
        size=(128, 96), generator=torch.Generator().manual_seed(6),
    )
    engine = []
    actual = expand_by_sampling(
        sd15, Guide(reference), replace(config, window_batch=1), size=(128, 96), generator=torch.Generator().manual_seed(6),
        callback=lambda info: engine.append(info["loss"]) if info["ad_iteration"] == 2 else None,
    )
    tiles = len(views(12, 16, 8, 4))
    assert tiles == 6 and [len(step) for step in baseline] == [tiles * 2] * 2
    # one report per guided window at its last iteration, carrying that window's loss
    assert_same_losses([loss for step in baseline for loss in step[1::2]], engine)
    # Adam's first steps move an element by ~lr whatever its gradient's size, so the last-bit
    # rounding of a near-zero gradient can show at 1e-4 in a few elements
    torch.testing.assert_close(actual, expected, rtol=1e-3, atol=5e-4)
    batched = expand_by_sampling(
        sd15, Guide(reference), replace(config, window_batch=4), size=(128, 96), generator=torch.Generator().manual_seed(6)
    )
    # a batch sums its windows' losses, so each window gets the gradient it gets alone
    torch.testing.assert_close(batched, actual, rtol=1e-3, atol=5e-4)


@pytest.mark.parametrize("chunk", [2, 3])
def test_features_computed_ahead_in_chunks_keep_the_losses(sd15, chunk):
    """Chunks of 2 and 3 over 4 iterations: whole chunks, and a last chunk padded to full size."""
    style, content, init = inputs()
    guide = Guide(style, content, 0.25)
    _, one_at_a_time = engine_losses(sd15, init, guide, feature_chunk=1)
    _, chunked = engine_losses(sd15, init, guide, feature_chunk=chunk)
    assert_same_losses(one_at_a_time, chunked)


def test_low_vram_keeps_the_result_and_restores_the_model(sd15):
    style, content, init = inputs()
    guide = Guide(style, content, 0.25)
    _, plain = engine_losses(sd15, init, guide)
    image = sd15.decode_latents(content)
    with low_vram(sd15):
        assert sd15.denoiser.is_gradient_checkpointing and sd15.vae_offloaded and sd15.vae.use_tiling
        _, saving = engine_losses(sd15, init, guide)
        saving_image = sd15.decode_latents(content)
    assert_same_losses(plain, saving)
    torch.testing.assert_close(saving_image, image)
    assert not sd15.denoiser.is_gradient_checkpointing
    assert not sd15.vae_offloaded and not sd15.vae.use_tiling


@pytest.mark.parametrize(
    "arch, side, forward, forward_backward",
    [("sd15", 64, 0.80, 1.73), ("sdxl", 128, 6.76, 14.2)],
)
@pytest.mark.slow
def test_full_size_architectures_cost_what_the_published_models_cost(arch, side, forward, forward_backward):
    """The configs each architecture holds (``published_configs``) are the published ones: their FLOPs at 512²
    (SD1.5) and 1024² (SDXL) are the published architectures' (counted on the meta device)."""
    unet = meta_denoiser(arch)
    with torch.device("meta"):
        z = torch.randn(1, 4, side, side, requires_grad=True)
        text = torch.randn(1, 77, unet.config.cross_attention_dim)
        extra = {}
        if arch == "sdxl":
            extra = {"added_cond_kwargs": {"text_embeds": torch.randn(1, 1280), "time_ids": torch.randn(1, 6)}}
    counter = FlopCounterMode(display=False)
    with counter:
        unet(z, torch.tensor([500], device="meta"), encoder_hidden_states=text, **extra).sample.sum().backward()
    forward_counter = FlopCounterMode(display=False)
    with forward_counter, torch.no_grad():
        unet(z, torch.tensor([500], device="meta"), encoder_hidden_states=text, **extra)
    assert forward_counter.get_total_flops() / 1e12 == pytest.approx(forward, rel=0.01)
    assert counter.get_total_flops() / 1e12 == pytest.approx(forward_backward, rel=0.01)


@pytest.mark.subprocess
@pytest.mark.slow
def test_cpu_bench_runs_and_writes_its_table(tmp_path):
    command = [sys.executable, "-m", "benchmarks.run", "--device", "cpu", "--iterations", "2", "--repeat", "1",
               "--warmup", "1", "--only", "style-transfer engine", "--only", "style-transfer baseline",
               "--only", "texture baseline", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "latest.json").read_text())
    rows = {(r["task"], r["arch"], r["impl"], r["variant"]): r for r in data["rows"]}
    engine, baseline = rows[("style-transfer", "sd15", "engine", "")], rows[("style-transfer", "sd15", "baseline", "")]
    assert engine["iterations"] == baseline["iterations"] == 2
    assert engine["wall_s"] > 0 and engine["tflop"] > 0
    # less work than the literal algorithm: passes stop after the last needed layer, and the
    # target's attention output is reused instead of recomputed
    assert engine["tflop"] < baseline["tflop"]
    assert engine["host_syncs"] is None  # counted on CUDA only
    assert engine["speedup_vs_baseline"] == pytest.approx(baseline["wall_s"] / engine["wall_s"])
    assert ("style-transfer", "sdxl", "baseline", "") in rows
    table = (tmp_path / "latest.md").read_text()
    assert "| style-transfer | baseline | sd15 | 64² | 2 |" in table
    assert "speed-up |" in table.splitlines()[4]
    assert "| style-transfer | engine | sd15 | 64² | 2 |" in table
    assert table in done.stdout


@pytest.mark.subprocess
@pytest.mark.slow
def test_cpu_bench_sampling_rows(tmp_path):
    """Texture sampling and expansion against their literal baselines: one reference pass per
    step for the engine, one per window and iteration for the baseline."""
    command = [sys.executable, "-m", "benchmarks.run", "--device", "cpu", "--steps", "1", "--repeat", "1",
               "--warmup", "1", "--only", "sampling", "--only", "128x64", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = {(r["task"], r["impl"]): r for r in json.loads((tmp_path / "latest.json").read_text())["rows"]}
    assert set(rows) == {(task, impl) for task in ("texture-sampling", "expand") for impl in ("engine", "baseline")}
    sampling, literal = rows[("texture-sampling", "engine")], rows[("texture-sampling", "baseline")]
    assert sampling["iterations"] == 1 and sampling["ad_iterations"] == 3
    assert sampling["reference_passes_per_step"] == 1 and literal["reference_passes_per_step"] == 3
    assert sampling["speedup_vs_baseline"] == pytest.approx(literal["wall_s"] / sampling["wall_s"])
    expand, literal = rows[("expand", "engine")], rows[("expand", "baseline")]
    assert expand["windows"] == literal["windows"] == 3 and expand["reference_passes_per_step"] == 1
    assert literal["reference_passes_per_step"] == 3 * 3  # windows × AD iterations
    assert expand["ms_per_megapixel_step"] == pytest.approx(1000 * expand["wall_s"] / (128 * 64 / 1e6))
    assert expand["speedup_vs_baseline"] == pytest.approx(literal["wall_s"] / expand["wall_s"])
    table = (tmp_path / "latest.md").read_text()
    assert "| expand | engine | sd15 | 128×64 | 1×3 |" in table
    assert "| expand | baseline | sd15 | 128×64 | 3 |" in table  # the per-step table: windows


def test_report_says_why_a_sampling_row_has_no_baseline():
    """The large expansion runs without its baseline; the table says so (made-up timings)."""
    strip = Case("expand", "sd15", 128, 2, "engine", height=64, ad_iterations=3, stride=4)
    square = Case("expand", "sd15", 192, 2, "engine", height=192, ad_iterations=3, stride=4)
    baseline = Case("expand", "sd15", 128, 2, "baseline", height=64, ad_iterations=3, stride=4)
    results = [(strip, Measurement(1.0, None, 10, None, 1.0, 3)), (baseline, Measurement(3.0, None, 20, None, 9.0, 3)),
               (square, Measurement(8.0, None, 80, None, 1.0, 25))]
    rows = make_rows(results, None)
    assert [r.speedup_vs_baseline for r in rows] == [3.0, None, None]
    assert rows[2].ms_per_megapixel_step == pytest.approx(1000 * 8.0 / 2 / (192 * 192 / 1e6))
    table = markdown(rows, {"device_name": "test", "models": "tiny", "date": "", "torch": "", "diffusers": ""})
    assert "| expand | engine | sd15 | 192² | 25 | 4000.0 |" in table
    assert "No baseline row for expand at 192²: the literal baseline would run 75 reference passes per step" in table


@pytest.mark.subprocess
@pytest.mark.slow
def test_cpu_bench_flux_rows(tmp_path):
    """tiny-FLUX t2i at FLUX.1-dev's preset beside the literal flow-matching loop (a reference pass per AD
    iteration, against the engine's one per step), and, with torchao installed, int8 weights and their PSNR."""
    from benchmarks.devices import torchao_available

    command = [sys.executable, "-m", "benchmarks.run", "--device", "cpu", "--steps", "1", "--repeat", "1",
               "--warmup", "1", "--arch", "flux", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {(r["impl"], r["variant"]): r for r in json.loads((tmp_path / "latest.json").read_text())["rows"]}
    assert set(rows) == {("engine", ""), ("baseline", "")} | ({("engine", "int8")} if torchao_available() else set())
    engine, literal = rows[("engine", "")], rows[("baseline", "")]
    assert engine["ad_iterations"] == literal["ad_iterations"] == 2 and engine["size"] == 64
    assert engine["reference_passes_per_step"] == 1 and literal["reference_passes_per_step"] == 2
    assert engine["speedup_vs_baseline"] == pytest.approx(literal["wall_s"] / engine["wall_s"])
    table = (tmp_path / "latest.md").read_text()
    assert "| t2i | baseline | flux | 64² | 1×2 |" in table
    if torchao_available():
        assert 20 < rows[("engine", "int8")]["psnr_db"] < 120  # close to the fp32 picture, not the same
        assert "| t2i | flux | 64² | int8 |" in table
