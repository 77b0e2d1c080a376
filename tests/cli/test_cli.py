"""Each command through the CLI: PNGs with settings in their metadata, and one-line errors."""

from __future__ import annotations

import pytest
from PIL import Image

import adcli
from adcli.outputs.files import read_metadata
from tests.conftest import FAST, make_image


def one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"adcli {adcli.__version__}"


@pytest.mark.parametrize("command", ["style-transfer", "appearance", "texture"])
def test_help_explains_every_option_with_examples(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0
    for option in ("--iterations", "--lr", "--layers", "--seed", "--model", "--vae", "--dtype", "--device", "--size", "--preset", "--output"):
        assert option in result.stdout
    assert "Examples" in result.stdout and f"adcli {command}" in result.stdout


def test_style_transfer_writes_png_with_settings(cli, images, tmp_path):
    content, style = images
    out = tmp_path / "result.png"
    result = cli("style-transfer", content, "--style", style, "-o", out, *FAST, "--seed", "7", "--content-weight", "0.5")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    with Image.open(out) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    meta = read_metadata(out)
    assert meta["adcli_version"] == adcli.__version__
    assert meta["task"] == "style-transfer"
    assert meta["preset"] == "built-in:style-transfer"
    assert meta["settings"]["content_weight"] == 0.5 and meta["settings"]["iterations"] == 3
    assert meta["settings"]["model"] == "tiny" and meta["settings"]["seed"] == 7
    assert meta["overrides"]["content_weight"] == 0.5
    assert meta["inputs"] == {"content": str(content), "style": [str(style)]}
    assert isinstance(meta["seed"], int)


@pytest.mark.slow
def test_appearance_and_texture_write_into_a_folder(cli, images, tmp_path):
    structure, reference = images
    out = tmp_path / "out"
    assert cli("appearance", structure, "--appearance", reference, "-o", out, *FAST).exit_code == 0
    assert cli("texture", "--reference", reference, "-o", out, *FAST, "--num-images", "2").exit_code == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["content_style.png", "style_texture_0.png", "style_texture_1.png"]
    assert read_metadata(out / "content_style.png")["settings"]["content_weight"] == 0.2
    first, second = (read_metadata(out / f"style_texture_{i}.png")["seed"] for i in (0, 1))
    assert first != second


def test_multiple_styles_are_one_multi_reference_job(cli, images, tmp_path):
    content, style = images
    other = make_image(tmp_path / "other.png", seed=5)
    out = tmp_path / "out"
    result = cli("style-transfer", content, "--style", style, "--style", other, "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    [written] = list(out.iterdir())
    assert read_metadata(written)["inputs"]["style"] == [str(style), str(other)]


@pytest.mark.slow
def test_never_overwrites_silently(cli, images, tmp_path):
    content, style = images
    out = tmp_path / "out"
    for _ in range(2):
        assert cli("style-transfer", content, "--style", style, "-o", out, *FAST).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["content_style-1.png", "content_style.png"]
    target = tmp_path / "one.png"
    target.write_bytes(b"precious")
    message = one_line_error(cli("style-transfer", content, "--style", style, "-o", target, *FAST))
    assert "already exists" in message and target.read_bytes() == b"precious"
    assert cli("style-transfer", content, "--style", style, "-o", target, *FAST, "--overwrite").exit_code == 0
    assert read_metadata(target)["task"] == "style-transfer"


@pytest.mark.slow
def test_same_seed_same_pixels(cli, images, tmp_path):
    _, reference = images
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for path, seed in zip(paths, ["3", "3", "4"]):
        assert cli("texture", "-r", reference, "-o", path, *FAST, "--seed", seed).exit_code == 0
    pixels = [Image.open(p).tobytes() for p in paths]
    assert pixels[0] == pixels[1] and pixels[0] != pixels[2]


def test_quiet_prints_only_paths(cli, images, tmp_path):
    _, reference = images
    result = cli("texture", "-r", reference, "-o", tmp_path / "t.png", *FAST)
    assert result.stdout.strip() == str(tmp_path / "t.png") and result.stderr == ""


def broken_inputs(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    good = make_image(tmp_path / "good.jpg", size=(64, 64))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty"
    empty.mkdir()
    return {"missing": (tmp_path / "nope.png", "does not exist"),
            "not an image": (text, "is not an image"),
            "truncated": (truncated, "broken or truncated"),
            "empty folder": (empty, "holds no images")}


@pytest.mark.parametrize("case", ["missing", "not an image", "truncated", "empty folder"])
@pytest.mark.parametrize("role", ["content", "style"])
def test_bad_images_give_one_line_and_no_output(cli, images, tmp_path, case, role):
    content, style = images
    bad, expected = broken_inputs(tmp_path)[case]
    args = (bad, "--style", style) if role == "content" else (content, "--style", bad)
    out = tmp_path / "out"
    message = one_line_error(cli("style-transfer", *args, "-o", out, *FAST))
    assert expected in message and str(bad) in message
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("args, expected", [
    (["--size", "100x100"], "multiple of 8"),
    (["--size", "99999x512"], "larger than"),
    (["--size", "wide"], "not WIDTHxHEIGHT"),
    (["--model", "/no/such/model"], "check the path"),
    (["--model", "./missing.safetensors"], "does not exist"),
    (["--device", "cuda"], "no CUDA"),
    (["--device", "tpu"], "unknown device"),
    (["--device", "mps"], "not supported"),
    (["--dtype", "fp8"], "dtype must be one of"),
    (["--layers=-99"], "--layers -99 does not exist: model tiny has 16 self-attention layers"),
    (["--layers", "x,y"], "comma-separated whole numbers"),
])
def test_bad_options_give_one_line(cli, images, tmp_path, args, expected):
    _, reference = images
    out = tmp_path / "out"
    message = one_line_error(cli("texture", "-r", reference, "-o", out, "--quiet", "--iterations", "2", *(["--model", "tiny", "--size", "64x64"] + args)))
    assert expected in message
    assert not out.exists() or not any(out.iterdir())


def test_unknown_preset_key_gives_one_line(cli, images, tmp_path):
    _, reference = images
    preset = tmp_path / "p.yaml"
    preset.write_text("iterations: 5\nstrenght: 3\n")
    message = one_line_error(cli("texture", "-r", reference, "--preset", preset, *FAST))
    assert "strenght" in message


def test_wrong_type_in_preset_gives_one_line(cli, images, tmp_path):
    _, reference = images
    preset = tmp_path / "p.yaml"
    preset.write_text("lr: quick\n")
    assert "lr must be a number" in one_line_error(cli("texture", "-r", reference, "--preset", preset, *FAST))


def test_several_jobs_need_a_folder(cli, images, tmp_path):
    content, style = images
    message = one_line_error(cli("style-transfer", content, style, "--style", style, "-o", tmp_path / "x.png", *FAST))
    assert "give a folder" in message


def test_failed_item_does_not_stop_the_batch(cli, images, tmp_path):
    content, style = images
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    out = tmp_path / "out"
    result = cli("style-transfer", content, broken, "--style", style, "-o", out, *FAST)
    assert result.exit_code == 1
    assert "broken.png" in result.stderr and "1 of 2" in result.stderr
    assert [p.name for p in out.iterdir()] == ["content_style.png"]


def test_a_missing_path_stops_before_any_work(cli, images, tmp_path):
    content, style = images
    message = one_line_error(cli("style-transfer", content, tmp_path / "gone.png", "--style", style, "-o", tmp_path / "out", *FAST))
    assert "gone.png" in message and "does not exist" in message
    assert not (tmp_path / "out").exists()


def test_debug_variable_shows_the_traceback(cli, images, tmp_path, monkeypatch):
    monkeypatch.setenv("ADCLI_DEBUG", "1")
    result = cli("texture", "-r", tmp_path / "nope.png", *FAST)
    assert result.exit_code == 2 and "Traceback" in result.stderr


def test_make_demo_is_rerunnable():
    """Every demo command that writes an image replaces its own output (or resumes), so a second
    `make demo` leaves no NAME-1.png copies beside the first run's."""
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    writing = [line for line in recipe.splitlines() if "$(RUN)" in line and " -o " in line]
    assert len(writing) >= 10
    assert all("--overwrite" in line or "--resume" in line for line in writing), writing
