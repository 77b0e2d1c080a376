"""Input images: every common mode is accepted, EXIF orientation is honoured."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from adcli.engine.images import check_image, fit_to_pixels, load_image_tensor, open_rgb
from adcli.errors import PresetError
from adcli.presets import parse_size_spec
from adcli.tasks.common import resolve_size
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


# -- pictures as a camera or an editor writes them ------------------------------------------------

def png_16bit_rgb(path, array):
    """A 48-bit RGB PNG written chunk by chunk (Pillow cannot write one): ``array`` (H, W, 3) uint16."""
    import struct
    import zlib

    height, width, _ = array.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in array)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def test_16bit_grey_png_reads_as_its_picture_not_white(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)  # (H, W)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    grey = np.asarray(open_rgb(path)).astype(int)
    assert np.abs(grey[..., 0] - np.round(ramp / 257)).max() <= 1
    assert (grey[..., 0] == grey[..., 2]).all() and grey.min() == 0 and grey.max() == 255


def test_16bit_rgb_png_keeps_its_colours(tmp_path):
    array = np.zeros((16, 16, 3), dtype=np.uint16)
    array[..., 0] = 65535  # red
    array[8:, :, 2] = 32768  # bottom half also half blue
    rgb = np.asarray(open_rgb(png_16bit_rgb(tmp_path / "rgb16.png", array))).astype(int)
    assert (rgb[:8] == [255, 0, 0]).all() and (np.abs(rgb[8:] - [255, 0, 128]) <= 1).all()


def test_32bit_integer_and_float_images_are_scaled_to_their_range(tmp_path):
    ramp = np.linspace(0, 1, 64 * 8, dtype=np.float32).reshape(8, 64)
    Image.fromarray(ramp, "F").save(tmp_path / "float.tif")
    Image.fromarray((ramp * 1_000_000).astype(np.int32), "I").save(tmp_path / "int.tif")
    for name in ("float.tif", "int.tif"):
        grey = np.asarray(open_rgb(tmp_path / name))[..., 0].astype(int)
        assert np.abs(grey - np.round(ramp * 255)).max() <= 1, name


def test_palette_png_with_transparency_is_composited_on_white(tmp_path):
    image = Image.new("P", (8, 8), 0)
    image.putpalette([200, 10, 10] + [0, 0, 0] * 255)
    image.paste(1, (0, 0, 4, 8))  # left half: colour 1, made transparent below
    path = tmp_path / "palette.png"
    image.save(path, transparency=1)
    rgb = np.asarray(open_rgb(path))
    assert (rgb[:, :4] == 255).all() and (rgb[:, 4:] == [200, 10, 10]).all()


def test_grey_with_alpha_is_composited_on_white(tmp_path):
    grey = np.stack([np.full((4, 4), 0, np.uint8), np.full((4, 4), 128, np.uint8)], axis=-1)  # black, half opaque
    path = tmp_path / "la.png"
    Image.fromarray(grey, "LA").save(path)
    assert np.abs(np.asarray(open_rgb(path)).astype(int) - 127).max() <= 1


def test_cmyk_jpeg_shows_its_colours(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=100)  # pure red in print colours
    assert Image.open(path).mode == "CMYK"
    red = np.asarray(open_rgb(path)).astype(int).mean(axis=(0, 1))
    assert red[0] > 230 and red[1] < 25 and red[2] < 25


def test_pil_images_and_arrays_are_accepted(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (10, 20, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(open_rgb(array)), array)
    assert np.array_equal(np.asarray(open_rgb(Image.fromarray(array).convert("RGBA"))), array)
    assert load_image_tensor(array, (24, 16)).shape == (1, 3, 16, 24)
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8"):
        open_rgb(array.astype(np.float32))
    with pytest.raises(InputError, match="must be a path"):
        open_rgb(42)


def test_exif_rotation_of_a_pil_image_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (40, 20)).save(path, exif=exif.tobytes())
    assert open_rgb(Image.open(path)).size == (20, 40)


def test_check_image_decodes_the_whole_file(tmp_path):
    good = make_image(tmp_path / "good.jpg", size=(64, 48))
    assert check_image(good) == (64, 48)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError) as caught:
        check_image(truncated)
    assert str(truncated) in str(caught.value) and "\n" not in str(caught.value)
    garbage = tmp_path / "notes.png"
    garbage.write_text("not an image")
    with pytest.raises(InputError, match="notes.png"):
        check_image(garbage)


# -- sizes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("width, height, pixels", [(4000, 3000, 512 * 512), (3000, 4000, 512 * 512), (1920, 1080, 1024 * 1024), (64, 64, 512 * 512)])
def test_fit_to_pixels_keeps_the_aspect_ratio_and_the_budget(width, height, pixels):
    w, h = fit_to_pixels(width, height, pixels)
    assert w % 8 == 0 and h % 8 == 0
    assert abs(w / h - width / height) < 0.03
    assert abs(w * h / pixels - 1) < 0.05


def test_fit_to_pixels_of_a_photo():
    assert fit_to_pixels(4000, 3000, 512 * 512) == (592, 440)
    assert fit_to_pixels(10, 10_000, 512 * 512) == (8, 4096)  # no side below 8 or above 4096


def test_size_specs():
    assert resolve_size(parse_size_spec("512x768"), _native(512 * 512), (4000, 3000)) == (512, 768)  # exact wins
    assert resolve_size(parse_size_spec("768"), _native(512 * 512), (4000, 3000)) == (768, 576)  # longer side
    assert resolve_size(parse_size_spec("768"), _native(512 * 512), None) == (768, 768)
    assert resolve_size(parse_size_spec("auto"), _native(1024 * 1024), (1000, 500)) == (1448, 728)
    assert resolve_size(parse_size_spec("auto"), _native(512 * 512), None) == (512, 512)
    assert parse_size_spec("512X768").exact == (512, 768)


def _native(pixels: int) -> tuple[int, int]:
    side = int(pixels ** 0.5)
    return side, side


@pytest.mark.parametrize("text, expected", [("500", "multiple of 8"), ("64x60", "multiple of 8"), ("wide", "WIDTHxHEIGHT"),
                                            ("8192", "larger than"), ("0", "multiple of 8"), ("-8", "WIDTHxHEIGHT")])
def test_bad_size_specs_are_one_line_errors(text, expected):
    with pytest.raises(PresetError, match=expected):
        parse_size_spec(text)


def test_references_keep_their_aspect_ratio():
    from adcli.tasks.common import reference_size

    assert reference_size((300, 100), (64, 64)) == (112, 40)  # 3:1 at about 64² pixels
