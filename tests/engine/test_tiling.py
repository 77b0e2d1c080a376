"""Seamless tiling: the tiled tiny model wraps around, and every convolution is restored afterwards."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from adcli.cli.app import app
from adcli.engine.models import load_backend
from adcli.engine.tiling import seam_ratio, seam_steps, seamless
from adcli.outputs.files import read_metadata

BRICK = Path(__file__).resolve().parents[2] / "samples" / "style" / "brick.jpg"


@pytest.fixture(scope="module")
def backend():
    return load_backend("tiny", device=torch.device("cpu"), dtype=torch.float32)


def conv_state(*modules: torch.nn.Module) -> list:
    return [
        (m.padding, m.padding_mode, len(m._forward_pre_hooks))
        for module in modules
        for m in module.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]


def unet_eps(backend, latents: torch.Tensor) -> torch.Tensor:
    inputs = backend.model_inputs(backend.encode_prompts([""]), 1, tuple(latents.shape[-2:]))
    return backend.denoiser(latents, torch.tensor([500]), **inputs).sample


def smooth_periodic_latents(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """(1, 4, h, w) waves with one period across the latent: smooth, and periodic in both axes."""
    phase = torch.rand(4, 2, generator=torch.Generator().manual_seed(seed)) * 2 * math.pi
    y = torch.arange(height).float()[:, None] * 2 * math.pi / height
    x = torch.arange(width).float()[None, :] * 2 * math.pi / width
    return 2 * torch.stack([torch.sin(x + phase[c, 0]) + torch.cos(y + phase[c, 1]) for c in range(4)])[None]


@pytest.mark.parametrize("axes", ["x", "y", "xy"])
def test_tiled_models_commute_with_circular_shifts(backend, axes):
    """Circular padding makes UNet and decoder equivariant to wrap-around shifts, on the tiled axes only."""
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    dims = {"x": [-1], "y": [-2], "xy": [-2, -1]}[axes]
    untouched = {"x": -2, "y": -1, "xy": None}[axes]
    with torch.no_grad(), seamless([backend.denoiser, backend.vae], axes):
        for dim in dims:
            shifted = torch.roll(latents, 8, dims=dim)  # 8 latents: a whole cell of the UNet's 3 downsamplings
            torch.testing.assert_close(unet_eps(backend, shifted), torch.roll(unet_eps(backend, latents), 8, dims=dim), atol=1e-4, rtol=0)
            picture = backend.decode_latents(torch.roll(latents, 2, dims=dim))
            torch.testing.assert_close(picture, torch.roll(backend.decode_latents(latents), 16, dims=dim), atol=1e-4, rtol=0)
        if untouched is not None:
            shifted = torch.roll(latents, 8, dims=untouched)
            gap = (unet_eps(backend, shifted) - torch.roll(unet_eps(backend, latents), 8, dims=untouched)).abs().max()
            assert gap > 1e-2  # the other axis still has zero padding


def test_untiled_models_do_not_commute_with_shifts(backend):
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = (backend.decode_latents(torch.roll(latents, 2, dims=-1)) - torch.roll(backend.decode_latents(latents), 16, dims=-1))
    assert gap.abs().max() > 1e-2


def test_seam_measure_sees_a_ramp_seam_and_not_a_periodic_one():
    x = torch.arange(64).float()
    ramp = (x / 63).expand(3, 16, 64)  # 0 → 1 left to right: wrapping jumps from 1 back to 0
    triangle = (1 - (x - 32).abs() / 32).expand(3, 16, 64)  # periodic, the same step everywhere
    assert seam_ratio(ramp, "x") > 30
    assert seam_ratio(triangle, "x") == pytest.approx(1.0)
    seam, others = seam_steps(ramp.transpose(1, 2), "y")
    assert seam == pytest.approx(1.0) and len(others) == 6  # the other cell edges: steps 7, 15, 23, 39, 47, 55


def test_tiled_decoder_has_no_seam_where_the_plain_one_has(backend):
    """Rolled by half its size, a periodic picture from the tiled decoder has no larger step at its seam
    than across the other 8-pixel cell edges; the plain decoder's zero padding leaves a clear seam."""
    latents = smooth_periodic_latents(16, 16)
    with torch.no_grad():
        plain = backend.decode_latents(latents)[0]
        with seamless([backend.vae], "xy"):
            tiled = backend.decode_latents(latents)[0]
    for axis in ("x", "y"):
        seam, interior = seam_steps(tiled, axis)
        assert seam <= float(interior.max())
        assert seam_ratio(tiled, axis) < 1.25
        seam, interior = seam_steps(plain, axis)
        assert seam > float(interior.max())
        assert seam_ratio(plain, axis) > 2.5


def test_padding_and_hooks_are_restored_even_after_an_error(backend):
    before = conv_state(backend.denoiser, backend.vae)
    latents = smooth_periodic_latents(8, 8)
    with torch.no_grad():
        reference = backend.decode_latents(latents)
        with seamless([backend.denoiser, backend.vae], "x") as changed:
            assert changed > 50
            assert conv_state(backend.denoiser, backend.vae) != before
        assert conv_state(backend.denoiser, backend.vae) == before
        with pytest.raises(RuntimeError, match="boom"):
            with seamless([backend.denoiser, backend.vae], "y"):
                raise RuntimeError("boom")
        assert conv_state(backend.denoiser, backend.vae) == before
        assert torch.equal(backend.decode_latents(latents), reference)
    with seamless([backend.denoiser], "none") as changed:
        assert changed == 0


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def read_pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image, dtype=np.float32) / 255).permute(2, 0, 1)  # (3, H, W)


@pytest.mark.slow
def test_texture_with_tile_x_wraps_around(tmp_path):
    """`adcli texture --tile x` on the tiny model: the seam is no larger than the interior's steps."""
    args = ["texture", "-r", BRICK, "--model", "tiny", "--size", "128x64", "--iterations", "10", "--quiet"]
    tiled = run(*args, "--tile", "x", "-o", tmp_path / "tiled.png")
    plain = run(*args, "-o", tmp_path / "plain.png")
    assert tiled.exit_code == 0 and plain.exit_code == 0, tiled.output + plain.output
    assert read_metadata(tmp_path / "tiled.png")["settings"]["tile"] == "x"
    tiled_pixels, plain_pixels = (read_pixels(tmp_path / name) for name in ("tiled.png", "plain.png"))
    seam, interior = seam_steps(tiled_pixels, "x")
    assert seam <= float(interior.max())
    assert seam_ratio(tiled_pixels, "x") < 1.25
    assert seam_ratio(tiled_pixels, "x") < seam_ratio(plain_pixels, "x")


def test_bad_tile_value_is_a_one_line_error(tmp_path):
    result = run("texture", "-r", BRICK, "--model", "tiny", "--tile", "diagonal", "-o", tmp_path)
    assert result.exit_code == 2
    assert "tile must be one of none, x, y, xy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_tile_preview_repeats_the_picture_and_reports_seams(tmp_path):
    source = tmp_path / "pic.png"
    pixels = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(source)
    result = run("tile-preview", source)
    assert result.exit_code == 0, result.output
    written = tmp_path / "pic_2x2.png"
    assert result.stdout.strip() == str(written)
    assert "seam ratio x" in result.stderr
    preview = np.asarray(Image.open(written))
    assert preview.shape == (48, 80, 3)
    for top in (0, 24):
        for left in (0, 40):
            assert np.array_equal(preview[top : top + 24, left : left + 40], pixels)
    assert read_metadata(written)["tile_preview_of"] == str(source)
    again = run("tile-preview", source, "-o", written)
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_tile_preview_verdict_follows_the_seam_ratio(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (64, 1, 3))  # dark left, bright right
    Image.fromarray(ramp, "RGB").save(tmp_path / "ramp.png")
    seam = run("tile-preview", tmp_path / "ramp.png", "-o", tmp_path / "ramp_2x2.jpg")
    assert seam.exit_code == 0, seam.output
    assert "visible seam in x" in seam.stderr and "no visible seam" not in seam.stderr
    assert Image.open(tmp_path / "ramp_2x2.jpg").format == "JPEG"
    triangle = np.concatenate([ramp[:, ::2], ramp[:, ::-2]], axis=1)  # wraps around: no seam either way
    Image.fromarray(np.ascontiguousarray(triangle), "RGB").save(tmp_path / "triangle.png")
    seamless_run = run("tile-preview", tmp_path / "triangle.png")
    assert "no visible seam" in seamless_run.stderr and "visible seam in" not in seamless_run.stderr
