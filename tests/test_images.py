"""Input images: every common mode is accepted, EXIF orientation is honoured."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from adcli.engine.images import load_image_tensor, open_rgb
from adcli.errors import InputError
from tests.conftest import make_image


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "I;16", "CMYK"])
def test_modes_are_converted_to_rgb(tmp_path, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = make_image(tmp_path / f"x{suffix}", mode=mode)
    image = open_rgb(path)
    assert image.mode == "RGB" and image.size == (48, 40)
    tensor = load_image_tensor(path, (32, 24))
    assert tensor.shape == (1, 3, 24, 32) and tensor.min() >= -1 and tensor.max() <= 1


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert np.asarray(open_rgb(path)).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, :20] = 255  # left half white
    image = Image.fromarray(array)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes(), quality=100)
    upright = open_rgb(path)
    assert upright.size == (20, 40)
    pixels = np.asarray(upright).mean(axis=(1, 2))
    assert pixels[:15].mean() > 200 and pixels[-15:].mean() < 50  # white half now on top


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = make_image(tmp_path / "big.png", size=(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(InputError, match="too large"):
        open_rgb(path)
