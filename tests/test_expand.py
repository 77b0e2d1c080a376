"""Texture expansion: MultiDiffusion windows, one reference pass per step, any output size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from adcli.engine.distill import Guide
from adcli.engine.guidance import ADGuidance
from adcli.engine.multidiffusion import WindowAverager, coverage, crop, expand_by_sampling, windows
from adcli.engine.sampler import distill_by_sampling, text_denoiser
from adcli.engine.tiling import seam_ratio
from adcli.tasks.outputs import read_metadata


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


def test_averager_averages_overlaps():
    latents = torch.randn(1, 4, 12, 20)
    averager = WindowAverager(windows(12, 20, 8, 3), batch=3)
    assert torch.allclose(averager(latents, lambda crops: crops), latents)
    doubled = averager(latents, lambda crops: 2 * crops)
    assert torch.allclose(doubled, 2 * latents)


def test_one_window_equals_plain_ad_guided_sampling(tiny_sd15):
    reference = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    common = dict(size=(64, 64), layers=[-2, -1], steps=3, iterations=2, lr=0.05, adain=False)
    plain = distill_by_sampling(
        tiny_sd15, text_denoiser(tiny_sd15, tiny_sd15.encode_prompts([""])), Guide(reference),
        generator=torch.Generator().manual_seed(5), **common,
    )
    expanded = expand_by_sampling(
        tiny_sd15, Guide(reference), generator=torch.Generator().manual_seed(5),
        window=8, stride=4, window_batch=2, **common,
    )
    assert torch.allclose(plain, expanded, atol=1e-5)


def test_progress_names_steps_and_window_batches(tiny_sd15):
    reports = []
    expand_by_sampling(
        tiny_sd15, Guide(torch.randn(1, 4, 8, 8)), size=(160, 96), generator=torch.Generator().manual_seed(0),
        layers=[-1], steps=2, iterations=1, lr=0.05, adain=False, window=8, stride=4, window_batch=5,
        on_step=lambda done, total, loss, detail: reports.append((done, total, detail)),
    )
    # 2 × 4 = 8 windows in batches of 5 and 3: per step 2 denoising batches, then 2 AD batches
    assert [r[0] for r in reports] == list(range(1, 9)) and {r[1] for r in reports} == {8}
    assert reports[0][2] == "step 1/2 · denoise windows 1/2"
    assert reports[3][2] == "step 1/2 · AD windows 2/2"
    assert reports[-1][2] == "step 2/2 · AD windows 2/2"


def test_reference_features_once_per_step(tiny_sd15, monkeypatch):
    prepared = []
    original = ADGuidance.prepare
    monkeypatch.setattr(ADGuidance, "prepare", lambda self, t: prepared.append(int(t)) or original(self, t))
    passes = []
    hook = tiny_sd15.unet.register_forward_pre_hook(lambda module, args: passes.append(args[0].shape[0]))
    steps, iterations = 3, 2
    tiles = windows(12, 20, 8, 4)  # 96×160 px → 2 × 4 = 8 windows
    batches = -(-len(tiles) // 5)
    try:
        latents = expand_by_sampling(
            tiny_sd15, Guide(torch.randn(1, 4, 8, 8)), size=(160, 96), generator=torch.Generator().manual_seed(0),
            layers=[-1], steps=steps, iterations=iterations, lr=0.05, adain=False, window=8, stride=4, window_batch=5,
        )
    finally:
        hook.remove()
    assert latents.shape == (1, 4, 12, 20)
    assert len(prepared) == steps and len(set(prepared)) == steps
    # per step: denoise every window batch, one reference pass, then the AD iterations on each batch
    assert len(passes) == steps * (batches + 1 + batches * iterations)
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
    assert result.exit_code == 2 and "stride must be between 1 and the window" in result.stderr


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
