"""What a new user meets first (issue 21): sizes as (width, height) in every API command, a model
that prints in one line, one-line range errors, an exact size a masked texture cannot keep said
out loud, and a pickled LoRA refused with what to do."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch

import adcli
from adcli.errors import ModelLoadError
from tests.support.batch_helpers import image, one_line_error, run

MASKS = Path(__file__).resolve().parents[2] / "samples" / "masks"  # target_labels.png is 384x256 (3:2)


@pytest.fixture(scope="module")
def model():
    return adcli.load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("first-use")
    return image(folder / "content.png", 1, (72, 48)), image(folder / "style.png", 2, (40, 40))


def test_every_api_command_takes_size_as_width_and_height(model, pictures):
    content, style = pictures
    assert adcli.style_transfer(model, content, style, iterations=1, size=(48, 32)).size == (48, 32)
    assert adcli.appearance(model, content, style, iterations=1, size=(32, 48)).size == (32, 48)
    assert adcli.texture(model, style, iterations=1, size=(40, 24))[0].size == (40, 24)
    assert adcli.t2i(model, "a cat", style, steps=1, size=(24, 32))[0].size == (24, 32)
    assert adcli.expand(model, style, size=(64, 32), window=8, stride=8, steps=1, ad_iterations=0).size == (64, 32)
    # an int is the longer side, at the content's 3:2 aspect ratio
    assert adcli.style_transfer(model, content, style, iterations=1, size=48).size == (48, 32)


def test_a_model_prints_as_one_short_line(model, tmp_path):
    shown = repr(model)
    assert "\n" not in shown and len(shown) < 200, shown
    assert shown == "Model('tiny', arch='sd15', device='cpu', dtype='float32')"
    from tests.support.loras import lora_layers, save_kohya_lora

    lora = save_kohya_lora(lora_layers("sd15"), tmp_path / "ink.safetensors")
    with_lora = repr(adcli.load_model("tiny", device="cpu", loras=f"{lora}:0.5"))
    assert with_lora.endswith(f"loras=['{lora}:0.5'])") and "\n" not in with_lora


@pytest.mark.parametrize(("args", "message"), [
    (["--num-images", "0"], "--num-images must be between 1 and 100000, got 0"),
    (["--quality", "101"], "--quality must be between 1 and 100, got 101"),
    (["--batch-size", "0"], "--batch-size must be between 1 and 1024, got 0"),
    (["--animation-every", "-2"], "--animation-every must be between 1 and 1000000, got -2"),
    (["--iterations", "abc"], "--iterations must be a whole number, got 'abc'"),
    (["--lr", "fast"], "--lr must be a number, got 'fast'"),
    (["--layers", "x,y"], "--layers 'x,y' must be comma-separated whole numbers"),
])
def test_bad_numbers_on_the_command_line_are_one_line(pictures, tmp_path, args, message):
    _, style = pictures
    line = one_line_error(run("texture", "-r", style, "--model", "tiny", *args, "-o", tmp_path / "out"))
    assert line == f"error: {message}" or line.startswith(f"error: {message}"), line
    assert not (tmp_path / "out").exists()


def test_bool_options_keep_their_no_form(pictures, tmp_path):
    _, style = pictures
    result = run("t2i", "a cat", "--style", style, "--model", "tiny", "--no-adain", "--steps", "1", "--size", "32x32",
                 "-o", tmp_path / "t.png", "--quiet")
    assert result.exit_code == 0, result.output
    from adcli.outputs.files import read_metadata

    assert read_metadata(tmp_path / "t.png")["settings"]["adain"] is False
    line = one_line_error(run("t2i", "a cat", "--style", style, "--model", "tiny", "--adain", "--no-adain", "-o", tmp_path / "u.png"))
    assert "give --adain or --no-adain, not both" in line


def test_an_exact_size_a_masked_texture_cannot_keep_is_said_in_one_line(model, tmp_path):
    args = ["texture", "-r", MASKS / "source_texture.png", "--source-mask", MASKS / "source_labels.png",
            "--target-mask", MASKS / "target_labels.png", "--model", "tiny", "--iterations", "1"]
    result = run(*args, "--size", "96x96", "--num-images", "2", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if "96x96" in line]
    assert len(said) == 1, result.stderr  # once for the run, not once per image
    assert re.search(r"--size 96x96 .*96x64.*target mask .*target_labels.png.*384x256", said[0]), said[0]
    from PIL import Image

    assert {Image.open(path).size for path in (tmp_path / "out").glob("*.png")} == {(96, 64)}
    quiet = run(*args, "--size", "96", "-o", tmp_path / "longer")  # the longer side: nothing to say
    assert quiet.exit_code == 0 and "target mask" not in quiet.stderr
    with pytest.warns(UserWarning, match=r"^size 96x96 .*96x64"):
        adcli.texture(model, MASKS / "source_texture.png", source_mask=MASKS / "source_labels.png",
                      target_mask=MASKS / "target_labels.png", size=(96, 96), iterations=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adcli.texture(model, MASKS / "source_texture.png", source_mask=MASKS / "source_labels.png",
                      target_mask=MASKS / "target_labels.png", size=(96, 64), iterations=1)


@pytest.mark.parametrize("name", ["style.bin", "style.pt", "style.safetensors"])
def test_a_pickled_lora_is_refused_with_how_to_convert_it(pictures, tmp_path, name):
    """Whatever its name says, a pickle is never unpickled; the message says how to convert it."""
    content, style = pictures
    pickled = tmp_path / name
    torch.save({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, pickled)
    line = one_line_error(run("style-transfer", content, "--style", style, "--model", "tiny", "--lora", pickled,
                              "--iterations", "1", "-o", tmp_path / "o.png"))
    assert f"LoRA {pickled} is a pickle: adcli reads only .safetensors LoRAs and never unpickles a file" in line
    assert f"torch.load('{name}', weights_only=True), '{Path(name).stem}.safetensors'" in line
    with pytest.raises(ModelLoadError, match="never unpickles"):
        adcli.load_model("tiny", device="cpu", loras=[(pickled, 1.0)])


def test_a_masked_texture_through_the_api_records_the_size_it_made(model):
    [picture] = adcli.texture(model, MASKS / "source_texture.png", source_mask=MASKS / "source_labels.png",
                              target_mask=MASKS / "target_labels.png", size=48, iterations=1)
    assert json.loads(picture.info["adcli"])["inputs"]["output_size"] == "48x32"
