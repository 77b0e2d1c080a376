"""Texture expansion: MultiDiffusion windows, one reference pass per step, any output size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from adcli.engine.config import ExpansionConfig, SamplingConfig
from adcli.engine.features import Guide
from adcli.engine.guidance import ADGuidance
from adcli.engine.multidiffusion import (
    WindowAverage,
    coverage,
    crop,
    crops,
    expand_by_sampling,
    window_batches,
    windows,
)
from diffusers import DDIMScheduler

from adcli.engine.sampler import distill_by_sampling, text_denoiser
from adcli.engine.tiling import seam_ratio
from adcli.outputs.files import read_metadata


@pytest.mark.parametrize("height, width, size, stride", [
    (64, 64, 64, 8),     # exactly one window
    (17, 9, 8, 4),       # not a multiple of the stride
    (6, 5, 8, 8),        # smaller than one window
    (256, 128, 64, 8),
    (40, 100, 16, 7),
])
def test_windows_cover_every_latent_pixel(height, width, size, stride):
    tiles = windows(height, width, size, stride)
    counts = coverage(height, width, tiles)
    assert counts.min() >= 1
    assert all(t.top + t.height <= height and t.left + t.width <= width for t in tiles)
    assert all((t.height, t.width) == (min(size, height), min(size, width)) for t in tiles)
    starts = sorted({t.left for t in tiles})
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_wrapping_windows_cross_the_edge_and_cover_evenly():
    tiles = windows(16, 24, 8, 4, wrap_x=True, wrap_y=True)
    assert any(t.left + t.width > 24 for t in tiles) and any(t.top + t.height > 16 for t in tiles)
    counts = coverage(16, 24, tiles)
    assert torch.all(counts == counts[0, 0])  # every pixel equally often: no edge is special
    latents = torch.arange(24.0).expand(1, 1, 16, 24)
    wrapped = crop(latents, [t for t in tiles if t.left == 20][0])
    assert wrapped[0, 0, 0].tolist() == [20, 21, 22, 23, 0, 1, 2, 3]


def test_window_average_averages_overlaps():
    latents = torch.randn(2, 4, 12, 20)
    groups = window_batches(windows(12, 20, 8, 3), batch=3)
    assert [len(g) for g in groups] == [3] * 5 and sum(groups, []) == windows(12, 20, 8, 3)
    same, doubled = WindowAverage(latents), WindowAverage(latents)
    for group in groups:
        same.add(group, crops(latents, group))
        doubled.add(group, 2 * crops(latents, group))
    assert torch.allclose(same.result(), latents)
    assert torch.allclose(doubled.result(), 2 * latents)


def test_one_window_equals_plain_ad_guided_sampling(tiny_sd15):
    reference = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    config = SamplingConfig(steps=3, ad_iterations=2, lr=0.05, layers=[-2, -1], adain=True)
    plain = distill_by_sampling(
        tiny_sd15, text_denoiser(tiny_sd15, tiny_sd15.encode_prompts([""])), Guide(reference), config,
        size=(64, 64), generator=torch.Generator().manual_seed(5),
    )
    expanded = expand_by_sampling(
        tiny_sd15, Guide(reference), ExpansionConfig(**vars(config), window=8, stride=4, window_batch=2),
        size=(64, 64), generator=torch.Generator().manual_seed(5),
    )
    assert torch.allclose(plain, expanded, atol=1e-5)


def _expansion(steps=2, iterations=1, window_batch=5, **extra) -> ExpansionConfig:
    return ExpansionConfig(steps, iterations, 0.05, [-1], window=8, stride=4, window_batch=window_batch, **extra)


def test_expansion_guides_each_windows_own_step_then_averages(tiny_sd15):
    """Two windows overlapping on 4 of 12 latent columns, two steps, one AD iteration, by hand in
    the paper's order: each window cropped from x_t, its own noise prediction and DDIM step, AD on
    that stepped window, then one average. Averaging the noise (stepping the merged latent) before
    AD — adcli's earlier order — gives another latent where the windows overlap."""
    reference = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    config = ExpansionConfig(2, 1, 0.05, [-2, -1], adain=True, window=8, stride=4, window_batch=1)
    out = expand_by_sampling(tiny_sd15, Guide(reference), config, size=(96, 64), generator=torch.Generator().manual_seed(2))
    denoise = text_denoiser(tiny_sd15, tiny_sd15.encode_prompts([""]))
    halves = (slice(0, 8), slice(4, 12))

    def average(parts: list[torch.Tensor]) -> torch.Tensor:
        total = torch.zeros(1, 4, 8, 12)
        for columns, part in zip(halves, parts):
            total[..., columns] += part
        total[..., 4:8] /= 2
        return total

    def by_hand(paper_order: bool) -> torch.Tensor:
        """diffusers' DDIM scheduler stepping each window (ours: the pure step from one point)."""
        generator = torch.Generator().manual_seed(2)
        scheduler = DDIMScheduler.from_config(tiny_sd15.scheduler_config)
        scheduler.set_timesteps(2)
        points = tiny_sd15.schedule(2, (8, 8))
        x = torch.randn(1, 4, 8, 12, generator=generator) * scheduler.init_noise_sigma
        guidance = ADGuidance(tiny_sd15, Guide(reference), generator, config)
        for index, t in enumerate(scheduler.timesteps):
            assert int(points[index].timestep) == int(t)
            with guidance.installed():
                step = guidance.prepare(points[index + 1])
            with torch.no_grad():
                eps = [denoise(x[..., columns], points[index]) for columns in halves]
            assert (eps[0][..., 4:] - eps[1][..., :4]).abs().max() > 1e-2  # the overlap's predictions differ
            if paper_order:
                stepped = [scheduler.step(e, t, x[..., columns]).prev_sample for e, columns in zip(eps, halves)]
            else:
                merged = scheduler.step(average(eps), t, x).prev_sample
                stepped = [merged[..., columns] for columns in halves]
            with guidance.installed():
                x = average([guidance.apply(s, step) for s in stepped])
        return x

    torch.testing.assert_close(out, by_hand(paper_order=True), rtol=1e-4, atol=1e-5)
    assert (by_hand(paper_order=False) - out)[..., 4:8].abs().max() > 1e-2


def test_progress_reports_ad_iterations_of_each_window_batch(tiny_sd15):
    reports = []
    result = expand_by_sampling(
        tiny_sd15, Guide(torch.randn(1, 4, 8, 8)), _expansion(iterations=2), size=(160, 96),
        generator=torch.Generator().manual_seed(0), callback=lambda info: reports.append(info),
    )
    # 2 × 4 = 8 windows in batches of 5 and 3; 2 AD iterations each; 2 steps
    seen = [(r["step"], r["ad_iteration"], r["windows_done"]) for r in reports]
    assert seen == [(step, j, done) for step in (1, 2) for done in (5, 8) for j in (1, 2)]
    assert {(r["total"], r["ad_iterations"], r["windows"]) for r in reports} == {(2, 2, 8)}
    assert reports[0]["loss"] is None and reports[1]["loss"] > 0  # read once per window batch, at its last iteration
    assert reports[1]["latents"].shape == (1, 4, 12, 20)
    torch.testing.assert_close(reports[-1]["latents"], result)  # a step's last report carries x_{t−1}


def test_a_callback_returning_false_stops_expansion(tiny_sd15):
    reports = []

    def stop_in_step_2(info):
        reports.append(info)
        return info["step"] < 2

    result = expand_by_sampling(
        tiny_sd15, Guide(torch.randn(1, 4, 8, 8)), _expansion(steps=3), size=(160, 96),
        generator=torch.Generator().manual_seed(0), callback=stop_in_step_2,
    )
    assert [r["step"] for r in reports] == [1, 1, 2]
    torch.testing.assert_close(result, reports[-1]["latents"])
    torch.testing.assert_close(result, reports[1]["latents"])  # step 2 had not finished: x after step 1


def test_reference_features_once_per_step(tiny_sd15, monkeypatch):
    prepared = []
    original = ADGuidance.prepare
    monkeypatch.setattr(ADGuidance, "prepare", lambda self, point: prepared.append(int(point.timestep)) or original(self, point))
    passes = []
    hook = tiny_sd15.denoiser.register_forward_pre_hook(lambda module, args: passes.append(args[0].shape[0]))
    steps, iterations = 3, 2
    tiles = windows(12, 20, 8, 4)  # 96×160 px → 2 × 4 = 8 windows
    batches = -(-len(tiles) // 5)
    try:
        latents = expand_by_sampling(
            tiny_sd15, Guide(torch.randn(1, 4, 8, 8)), _expansion(steps, iterations), size=(160, 96),
            generator=torch.Generator().manual_seed(0),
        )
    finally:
        hook.remove()
    assert latents.shape == (1, 4, 12, 20)
    assert len(prepared) == steps and len(set(prepared)) == steps
    # per step: one reference pass, then each window batch denoised and AD-guided
    assert len(passes) == steps * (1 + batches * (1 + iterations))
    assert passes.count(1) == steps  # the only batch-1 passes are the reference's (batches hold 5 and 3)


@pytest.mark.parametrize("size", ["136x72", "48x40"])
def test_expand_cli_any_size(cli, images, tmp_path, size):
    _, reference = images
    out = tmp_path / "wide.png"
    result = cli("expand", "-r", reference, "--model", "tiny", "--size", size, "--window", "8", "--stride", "4",
                 "--steps", "2", "--ad-iterations", "1", "-q", "-o", out)
    assert result.exit_code == 0, result.output
    width, height = (int(v) for v in size.split("x"))
    assert Image.open(out).size == (width, height)
    meta = read_metadata(out)
    assert meta["task"] == "expand" and meta["settings"]["window"] == 8 and meta["settings"]["stride"] == 4


def test_expand_preset_defaults():
    from adcli.presets import load_settings

    settings = load_settings("expand").settings
    assert (settings.window, settings.stride, settings.steps, settings.ad_iterations, settings.lr) == (64, 8, 50, 3, 0.05)
    assert load_settings("expand", overrides={"size": "16384x8192"}).settings.size == "16384x8192"


def test_bad_window_settings_are_one_line_errors(cli, images):
    _, reference = images
    result = cli("expand", "-r", reference, "--model", "tiny", "--window", "8", "--stride", "9", "-q")
    assert result.exit_code == 2 and "stride (9) must not be larger than the window (8)" in result.stderr


@pytest.mark.slow
def test_tiled_expansion_wraps(cli, images, tmp_path):
    _, reference = images
    ratios = {}
    for tile in ("none", "x"):
        out = tmp_path / f"{tile}.png"
        result = cli("expand", "-r", reference, "--model", "tiny", "--size", "128x64", "--window", "8", "--stride", "4",
                     "--steps", "2", "--ad-iterations", "1", "--tile", tile, "-q", "-o", out)
        assert result.exit_code == 0, result.output
        pixels = torch.from_numpy(np.array(Image.open(out))).permute(2, 0, 1).float() / 255
        ratios[tile] = seam_ratio(pixels, "x")
    assert ratios["x"] < ratios["none"]
    assert ratios["x"] < 1.5


def test_every_window_steps_from_the_same_schedule_point(tiny_sd15, monkeypatch):
    """MultiDiffusion takes the pure step per window: all windows of a step go σ → σ' of that step,
    in schedule order (a scheduler object stepped per window would advance σ on every call)."""
    from adcli.engine.prediction import Epsilon

    calls = []

    class Recording(Epsilon):
        def step(self, x, output, sigma, sigma_next):
            calls.append((float(sigma), float(sigma_next), x.shape[0]))
            return super().step(x, output, sigma, sigma_next)

    monkeypatch.setattr(tiny_sd15, "_prediction", Recording())
    expand_by_sampling(
        tiny_sd15, Guide(torch.randn(1, 4, 8, 8)), _expansion(steps=3, iterations=0, window_batch=3), size=(160, 96),
        generator=torch.Generator().manual_seed(0),
    )
    sigmas = tiny_sd15.schedule(3, (8, 8)).sigmas.tolist()
    # 8 windows in batches of 3, 3 and 2, each batch stepped once per step, all from that step's point
    assert calls == [(sigmas[i], sigmas[i + 1], n) for i in range(3) for n in (3, 3, 2)]
