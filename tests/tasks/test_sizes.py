"""Pictures keep their aspect ratio unless the user asks for an exact size; the size used is recorded."""

from __future__ import annotations

import pytest
from PIL import Image

from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import image, run


def made(path):
    with Image.open(path) as opened:
        return opened.size


def test_without_size_a_photo_keeps_its_aspect_ratio_at_the_native_pixel_count(tmp_path):
    content, style = image(tmp_path / "photo.png", 1, (96, 64)), image(tmp_path / "s.png", 2)
    out = tmp_path / "auto.png"
    assert run("style-transfer", content, "--style", style, "--model", "tiny", "--iterations", "2", "-o", out).exit_code == 0
    width, height = made(out)
    assert width % 8 == 0 and height % 8 == 0 and abs(width / height - 1.5) < 0.1
    assert abs(width * height / (64 * 64) - 1) < 0.15  # the tiny model's native 64² pixels
    assert read_metadata(out)["size_used"] == f"{width}x{height}"


@pytest.mark.slow
def test_size_n_sets_the_longer_side_and_wxh_is_exact(tmp_path):
    content, style = image(tmp_path / "tall.png", 1, (48, 72)), image(tmp_path / "s.png", 2)
    longer, exact = tmp_path / "longer.png", tmp_path / "exact.png"
    assert run("appearance", content, "--appearance", style, "--model", "tiny", "--iterations", "2", "--size", "64",
               "-o", longer).exit_code == 0
    assert made(longer) == (40, 64)
    assert run("appearance", content, "--appearance", style, "--model", "tiny", "--iterations", "2", "--size", "64x64",
               "-o", exact).exit_code == 0
    assert made(exact) == (64, 64)


def test_t2i_layout_gives_its_aspect_ratio(tmp_path):
    layout, style = image(tmp_path / "layout.png", 3, (96, 48)), image(tmp_path / "s.png", 2)
    out = tmp_path / "t.png"
    result = run("t2i", "a road", "--style", style, "--layout", layout, "--model", "tiny", "--size", "64", "--steps", "2",
                 "--ad-iterations", "1", "-o", out)
    assert result.exit_code == 0, result.output
    assert made(out) == (64, 32)
