"""Live preview and run animation: files that appear, frames that end on the result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from adcli.engine.preview import LATENT_RGB_BIAS, LATENT_RGB_FACTORS, latent_preview, latent_to_rgb
from adcli.errors import InputError
from adcli.views.animation import AnimationRecorder, default_every
from adcli.views.preview import PreviewWriter, preview_path


def _progress(step, total, latents, **extra):
    return {"step": step, "total": total, "loss": 1.0 / step, "latents": latents, **extra}


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_latent_colours_are_the_linear_map(arch):
    latent = torch.zeros(4, 2, 3)
    latent[1, 0, 0] = 1.0  # one pixel of channel 1 only: its colour is that channel's factors plus the bias
    rgb = latent_to_rgb(latent, arch).numpy().astype(float)
    expected = (np.array(LATENT_RGB_FACTORS[arch][1]) + LATENT_RGB_BIAS[arch] + 1) * 127.5
    assert np.abs(rgb[0, 0] - expected).max() <= 0.5
    assert np.abs(rgb[1, 2] - (np.array(LATENT_RGB_BIAS[arch]) + 1) * 127.5).max() <= 0.5


def test_preview_has_the_decoded_size_and_refuses_other_latents():
    assert latent_preview(torch.randn(4, 8, 6), "sd15").size == (48, 64)
    assert latent_preview(torch.randn(16, 8, 6), "flux").size == (48, 64)  # FLUX.1 and SD3.5: 16 channels
    assert latent_preview(torch.randn(16, 4, 4), "sd3").size == (32, 32)
    with pytest.raises(InputError, match="architecture"):
        latent_to_rgb(torch.randn(4, 8, 8), "sd4")
    with pytest.raises(InputError, match="shape"):
        latent_to_rgb(torch.randn(16, 8, 8), "sd15")
    with pytest.raises(InputError, match=r"\(16, h, w\) latent"):
        latent_to_rgb(torch.randn(4, 8, 8), "flux")


def test_preview_file_appears_during_a_run_and_is_gone_after(tmp_path):
    output = tmp_path / "cat.png"
    writer = PreviewWriter(output, "sd15", every=2)
    assert writer.path == preview_path(output) == tmp_path / "cat.preview.png"
    latents = torch.randn(2, 4, 8, 8)
    writer(_progress(1, 6, latents))
    writer.flush(timeout=10)
    assert not writer.path.exists()  # step 1 is not a multiple of 2
    seen = []
    for step in range(2, 7):
        writer(_progress(step, 6, latents * step))
        writer.flush(timeout=10)
        seen.append(writer.path.exists())
    assert seen == [True] * 5
    with Image.open(writer.path) as image:
        assert image.size == (64, 64)
    assert [p.name for p in tmp_path.iterdir()] == ["cat.preview.png"]  # no temporary left behind
    writer.close()
    assert not writer.path.exists() and list(tmp_path.iterdir()) == []
    writer(_progress(8, 8, latents))  # a late call after close writes nothing
    assert not writer.path.exists()


def test_sampling_previews_only_after_the_last_ad_iteration(tmp_path):
    with PreviewWriter(tmp_path / "t.png", "sdxl", every=1) as writer:
        writer(_progress(1, 4, torch.randn(1, 4, 4, 4), ad_iteration=1, ad_iterations=3))
        writer.flush(timeout=10)
        assert not writer.path.exists()
        writer(_progress(1, 4, torch.randn(1, 4, 4, 4), ad_iteration=3, ad_iterations=3))
        writer.flush(timeout=10)
        assert writer.path.exists() and writer.written == 1
    assert not writer.path.exists()


def test_a_preview_that_cannot_be_written_does_not_stop_the_run(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    writer = PreviewWriter(blocker / "out.png", "sd15", every=1)
    writer(_progress(1, 2, torch.randn(1, 4, 4, 4)))
    writer.flush(timeout=10)
    assert writer.error is not None and "preview" in str(writer.error)
    writer(_progress(2, 2, torch.randn(1, 4, 4, 4)))  # quietly off from now on
    writer.close()


@pytest.mark.parametrize("total, frames", [(200, 40), (50, 50), (10, 10), (1000, 40)])
def test_default_spacing_gives_about_forty_frames(total, frames):
    assert total // default_every(total) == frames


def _decode_to_colour(latents):
    """A stand-in for the VAE: a 16×12 picture whose colour is the latent's mean."""
    value = int(latents.mean().item()) % 256
    return Image.new("RGB", (16, 12), (value, 255 - value, 7))


@pytest.mark.parametrize("suffix", [".webp", ".gif"])
def test_animation_has_frames_and_ends_on_the_result(tmp_path, suffix):
    recorder = AnimationRecorder(tmp_path / f"run{suffix}", every=3, decode=_decode_to_colour)
    for step in range(1, 13):
        recorder(_progress(step, 12, torch.full((2, 4, 3, 2), float(step * 10))))
    final = Image.new("RGB", (16, 12), (200, 40, 90))
    path = recorder.finish(final)
    with Image.open(path) as animation:
        assert animation.n_frames == 5  # steps 3, 6, 9, 12 and the result
        animation.seek(0)
        first = np.asarray(animation.convert("RGB"), dtype=int)
        animation.seek(animation.n_frames - 1)
        last = np.asarray(animation.convert("RGB"), dtype=int)
    assert np.abs(first - (30, 225, 7)).max() <= 2
    assert np.abs(last - np.asarray(final, dtype=int)).max() <= (0 if suffix == ".webp" else 2)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_animation_memory_stays_bounded(tmp_path):
    recorder = AnimationRecorder(tmp_path / "long.webp", every=1, decode=lambda _: Image.new("RGB", (2048, 1024)),
                                 max_side=64, max_frames=10)
    for step in range(1, 101):
        recorder(_progress(step, 100, torch.zeros(1, 4, 2, 2)))
    assert len(recorder.frames) <= 10 and recorder.every >= 10
    assert all(frame.size == (64, 32) for frame in recorder.frames)


def test_animation_needs_webp_or_gif(tmp_path):
    with pytest.raises(InputError, match=r"\.webp or \.gif"):
        AnimationRecorder(tmp_path / "run.mp4", every=1, decode=_decode_to_colour)
