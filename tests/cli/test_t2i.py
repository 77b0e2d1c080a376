"""`adcli t2i` and `adcli texture --mode sample` through the CLI, on the tiny models at 64×64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from adcli.cli.app import app
from adcli.engine.defaults import DEFAULT_MODELS
from adcli.engine.models import Backend
from adcli.presets import load_settings
from adcli.outputs.files import read_metadata

FAST = ["--steps", "3", "--ad-iterations", "1", "--quiet"]



def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def image(path, size=(64, 64), seed=0):
    array = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array, "RGB").save(path)
    return path


def one_line_error(result, code=2) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def style(tmp_path):
    return image(tmp_path / "style.png", seed=1)


def test_preset_has_the_papers_defaults():
    settings = load_settings("t2i").settings
    assert settings.model == DEFAULT_MODELS["sdxl"] and settings.size == "auto"
    assert (settings.steps, settings.guidance, settings.ad_iterations, settings.lr) == (50, 7.0, 2, 0.015)
    assert settings.adain is True and settings.negative_prompt == ""
    texture = load_settings("texture").settings
    assert (texture.mode, texture.steps, texture.ad_iterations, texture.lr) == ("optimize", 50, 3, 0.05)


def test_arch_picks_the_default_model_of_that_architecture(tmp_path):
    assert load_settings("t2i", overrides={"arch": "sd15"}).settings.model == DEFAULT_MODELS["sd15"]
    assert load_settings("t2i", overrides={"arch": "sdxl"}).settings.model == DEFAULT_MODELS["sdxl"]
    own = tmp_path / "own.yaml"
    own.write_text("model: /my/own/model\n")
    assert load_settings("t2i", own, {"arch": "sd15"}).settings.model == "/my/own/model"  # kept, and checked
    assert load_settings("t2i", None, {"arch": "sd15", "model": "tiny-sdxl"}).settings.model == "tiny-sdxl"


def test_help_shows_options_and_examples():
    result = run("t2i", "--help")
    assert result.exit_code == 0
    for option in ("--style", "--prompts", "--negative-prompt", "--steps", "--guidance", "--ad-iterations",
                   "--lr", "--no-adain", "--seed", "--num-images", "--size", "--arch", "--layout", "--strength",
                   "--controlnet", "--control", "--control-scale"):
        assert option in result.stdout
    assert "Examples" in result.stdout and 'adcli t2i "' in result.stdout
    assert "--mode" in run("texture", "--help").stdout


@pytest.mark.parametrize("model, arch", [("tiny", "sd15"), ("tiny-sdxl", "sdxl")])
def test_t2i_writes_png_with_every_sampler_option_in_metadata(tmp_path, style, model, arch):
    out = tmp_path / "cat.png"
    result = run("t2i", "a cat sitting on a bench", "--style", style, "--model", model, "-o", out, *FAST,
                 "--negative-prompt", "blurry", "--guidance", "5", "--no-adain", "--seed", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    with Image.open(out) as picture:
        assert picture.size == (64, 64)  # size auto: the tiny models' native size
        assert np.asarray(picture).std() > 0  # not a blank picture
    meta = read_metadata(out)
    assert meta["task"] == "t2i" and meta["model_arch"] == arch
    assert meta["inputs"]["prompt"] == "a cat sitting on a bench" and meta["inputs"]["style"] == [str(style)]
    settings = meta["settings"]
    assert settings | {
        "steps": 3, "ad_iterations": 1, "guidance": 5.0, "adain": False, "negative_prompt": "blurry", "seed": 4,
    } == settings
    for option in ("lr", "layers", "size", "strength", "content_weight", "controlnet", "control_scale", "arch"):
        assert option in settings


@pytest.mark.slow
def test_zero_ad_iterations_changes_only_the_guidance(tmp_path, style):
    paths = {}
    for iterations in ("0", "1"):
        paths[iterations] = tmp_path / f"ad{iterations}.png"
        args = ["t2i", "a cat", "--style", style, "--model", "tiny", "--steps", "3", "--quiet"]
        assert run(*args, "--ad-iterations", iterations, "-o", paths[iterations]).exit_code == 0
    again = tmp_path / "again.png"
    assert run(*args, "--ad-iterations", "0", "-o", again).exit_code == 0
    pixels = {k: np.asarray(Image.open(p)) for k, p in paths.items()}
    assert np.array_equal(pixels["0"], np.asarray(Image.open(again)))  # same seed, same picture
    assert not np.array_equal(pixels["0"], pixels["1"])


@pytest.mark.slow
def test_prompts_file_gives_one_image_per_line_and_encodes_the_style_once(tmp_path, style, monkeypatch):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n\na dog on a hill\n  a red house  \n", encoding="utf-8")
    encoded = []
    original = Backend.encode_images
    monkeypatch.setattr(Backend, "encode_images", lambda self, pixels: encoded.append(1) or original(self, pixels))
    out = tmp_path / "out"
    result = run("t2i", "--prompts", prompts, "--style", style, "--model", "tiny", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    written = sorted(out.glob("*.png"))
    # numbered by the line each prompt stands on (line 2 is blank)
    assert [p.name for p in written] == ["001_a-cat_style.png", "003_a-dog-on-a-hill_style.png", "004_a-red-house_style.png"]
    assert [read_metadata(p)["inputs"]["prompt"] for p in written] == ["a cat", "a dog on a hill", "a red house"]
    assert len(encoded) == 1


def test_layout_starts_from_the_layout_and_is_recorded(tmp_path, style):
    layout = image(tmp_path / "layout.png", size=(80, 72), seed=3)  # resized to the output like any content
    out = tmp_path / "layout-out.png"
    result = run("t2i", "", "--style", style, "--layout", layout, "--strength", "0.5", "--model", "tiny", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert meta["inputs"]["layout"] == str(layout) and meta["settings"]["strength"] == 0.5


@pytest.mark.slow
def test_controlnet_changes_the_image(tmp_path, style):
    control = image(tmp_path / "edges.png", seed=4)
    base = ["t2i", "a cat", "--style", style, "--model", "tiny-sdxl", "--steps", "2", "--ad-iterations", "0", "--quiet"]
    plain, controlled = tmp_path / "plain.png", tmp_path / "controlled.png"
    assert run(*base, "-o", plain).exit_code == 0
    result = run(*base, "--controlnet", "tiny", "--control", control, "--control-scale", "2", "-o", controlled)
    assert result.exit_code == 0, result.output
    assert not np.array_equal(np.asarray(Image.open(plain)), np.asarray(Image.open(controlled)))
    meta = read_metadata(controlled)
    assert meta["settings"]["controlnet"] == "tiny" and meta["inputs"]["control"] == str(control)


def test_texture_sample_mode(tmp_path, style):
    out = tmp_path / "texture.png"
    result = run("texture", "-r", style, "--mode", "sample", "--model", "tiny", "--size", "64x64",
                 "--steps", "3", "--ad-iterations", "2", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    settings = read_metadata(out)["settings"]
    assert (settings["mode"], settings["steps"], settings["ad_iterations"]) == ("sample", 3, 2)


def test_empty_prompts_file_is_a_clear_error(tmp_path, style):
    prompts = tmp_path / "empty.txt"
    prompts.write_text("\n  \n", encoding="utf-8")
    line = one_line_error(run("t2i", "--prompts", prompts, "--style", style, "--model", "tiny", "-o", tmp_path / "o"))
    assert "has no prompts" in line and not (tmp_path / "o").exists()


def test_no_prompt_at_all_is_a_clear_error(tmp_path, style):
    assert "no prompt given" in one_line_error(run("t2i", "--style", style, "--model", "tiny"))


def test_controlnet_without_control_image_is_a_clear_error(tmp_path, style):
    line = one_line_error(run("t2i", "a cat", "--style", style, "--model", "tiny", "--controlnet", "tiny"))
    assert "--control" in line
    line = one_line_error(run("t2i", "a cat", "--style", style, "--model", "tiny", "--control", style))
    assert "--controlnet" in line


@pytest.mark.slow
def test_control_image_of_another_size_is_resized_to_the_output(tmp_path, style):
    """A 96×64 control image with a 64×64 output, exact and auto (the tiny model's native size)."""
    control = image(tmp_path / "edges.png", size=(96, 64))
    args = ["t2i", "a cat", "--style", style, "--model", "tiny", "--controlnet", "tiny", "--control", control, *FAST]
    for size in (["--size", "64x64"], []):
        out = tmp_path / f"o{len(size)}.png"
        result = run(*args, *size, "-o", out)
        assert result.exit_code == 0, result.output
        assert Image.open(out).size == (64, 64) and read_metadata(out)["size_used"] == "64x64"


@pytest.mark.slow
def test_the_control_image_is_stretched_to_the_output_as_diffusers_does(tmp_path, style):
    """The control image reaches the ControlNet resized to the output: a 96×64 image gives what the
    same image stretched to 64×64 by hand gives, and another image gives another picture.

    The tiny ControlNet, like every fresh diffusers ControlNet, ends its control-image embedding in
    a zero convolution, so its control image changes nothing; the test gives that layer weights."""
    import adcli

    model = adcli.load_model("tiny", device="cpu", controlnet="tiny")
    embedding = model.backend.controlnet.controlnet_cond_embedding.conv_out
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        embedding.weight.normal_(std=0.5)
    wide = Image.open(image(tmp_path / "edges.png", size=(96, 64), seed=4)).convert("RGB")
    by_hand = wide.resize((64, 64), Image.Resampling.LANCZOS)
    other = wide.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def made(control, **settings):
        return np.asarray(adcli.t2i(model, "a cat", style, control=control, steps=3, ad_iterations=1, **settings)[0])

    for size in ({"size": "64x64"}, {}):  # exact, and auto (the tiny model's native 64×64)
        picture = made(wide, **size)
        assert picture.shape == (64, 64, 3)
        assert np.array_equal(picture, made(by_hand, **size))
        assert not np.array_equal(picture, made(other, **size))


def test_control_image_follows_the_output_size():
    from adcli.engine.controlnet import load_control_image

    stripes = np.zeros((30, 60, 3), dtype=np.uint8)
    stripes[:, 30:] = 255  # right half white
    pixels = load_control_image(stripes, (64, 32))
    assert pixels.shape == (1, 3, 32, 64) and 0 <= pixels.min() and pixels.max() <= 1
    assert pixels[..., :28].max() < 0.05 and pixels[..., 36:].min() > 0.95  # the edge stays in the middle


def test_arch_mismatch_is_a_clear_error(style):
    line = one_line_error(run("t2i", "a cat", "--style", style, "--model", "tiny", "--arch", "sdxl", "--quiet"))
    assert "--arch sdxl" in line and "sd15" in line


def test_a_diverging_ad_step_writes_no_picture(tmp_path, style, monkeypatch):
    import adcli.engine.guidance as guidance

    monkeypatch.setattr(
        guidance, "distillation_losses", lambda target, *a, **k: target[max(target)].out.sum().reshape(1) * float("nan")
    )
    out = tmp_path / "nan.png"
    line = one_line_error(run("t2i", "a cat", "--style", style, "--model", "tiny", "-o", out, *FAST), code=1)
    assert "AD step" in line and "nan" in line and not out.exists()


def test_non_latin_prompts_keep_their_words_in_file_names(tmp_path, style):
    result = run("t2i", "чай у моря", "--style", style, "--model", "tiny", "--dry-run", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "out" / "чай-у-моря_style.png") in result.stdout
