"""Presets: built-in defaults (the paper's), user presets, overrides, and every kind of mistake."""

from __future__ import annotations

import pytest

from adcli.errors import PresetError
from adcli.presets import load_settings, parse_size


@pytest.mark.parametrize("task, weight", [("style-transfer", 0.25), ("appearance", 0.2), ("texture", 0.0)])
def test_builtin_presets_hold_the_papers_defaults(task, weight):
    settings = load_settings(task).settings
    assert settings.iterations == 200
    assert settings.lr == 0.05
    assert settings.content_weight == weight
    assert settings.size == "auto"  # the input's aspect ratio at the model's native pixel count (512² on SD1.5)
    assert settings.layers == (-6, -5, -4, -3, -2, -1)
    assert settings.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert settings.dtype == "bf16"


def test_user_preset_is_layered_and_overrides_win(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("iterations: 50\nlr: 0.1\nlayers: [10, 11]\n")
    resolved = load_settings("style-transfer", preset, {"lr": 0.02, "seed": None})
    assert resolved.settings.iterations == 50  # from the user preset
    assert resolved.settings.lr == 0.02  # the command line wins
    assert resolved.settings.layers == (10, 11)
    assert resolved.settings.content_weight == 0.25  # untouched built-in value
    assert resolved.preset == str(preset)
    assert resolved.overrides == {"lr": 0.02}  # None means "not given"
    assert resolved.as_dict()["settings"]["layers"] == [10, 11]


def test_settings_are_frozen():
    settings = load_settings("texture").settings
    with pytest.raises(AttributeError):
        settings.lr = 1.0


def test_unknown_key_is_named(tmp_path):
    preset = tmp_path / "typo.yaml"
    preset.write_text("iteratoins: 10\n")
    with pytest.raises(PresetError, match="unknown setting.*iteratoins"):
        load_settings("style-transfer", preset)


@pytest.mark.parametrize("text, message", [
    ("iterations: ten\n", "iterations must be a whole number"),
    ("iterations: 2.5\n", "iterations must be a whole number"),
    ("lr: fast\n", "lr must be a number"),
    ("dtype: fp8\n", "dtype must be one of bf16, fp16, fp32"),
    ("layers: [a, b]\n", "layers must be a whole number"),
    ("lr: -1\n", "lr must be greater than 0, got"),
    ("iterations: 0\n", "iterations must be between 1 and 100000"),
    ("size: 500x500\n", "multiple of 8"),
    ("size: big\n", "not WIDTHxHEIGHT, N"),
    ("- a\n- b\n", "must be a mapping"),
    ("iterations: [\n", "not valid YAML"),
])
def test_bad_values_are_explained(tmp_path, text, message):
    preset = tmp_path / "bad.yaml"
    preset.write_text(text)
    with pytest.raises(PresetError, match=message):
        load_settings("style-transfer", preset)


def test_missing_preset_file(tmp_path):
    with pytest.raises(PresetError, match="does not exist"):
        load_settings("texture", tmp_path / "nope.yaml")


def test_parse_size():
    assert parse_size("768x512") == (768, 512)
    assert parse_size(" 64 X 128 ") == (64, 128)
    with pytest.raises(PresetError, match="larger than 4096"):
        parse_size("100000x512")
    with pytest.raises(PresetError, match="multiple of 8"):
        parse_size("0x512")
