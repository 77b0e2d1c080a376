"""Per-architecture defaults: t2i on SD1.5 samples with 3 AD iterations at guidance 7.5 (the
paper's SD1.5 notebook), SDXL keeps 2 and 7; layered built-in ← built-in per-arch ← user preset
(and its per-arch values) ← command line; the architecture from --arch, a probe of the model, or
the loaded model; the resolved values reach the metadata, --resume, --help and `adcli info`."""

from __future__ import annotations

from types import SimpleNamespace

import json
import re

import pytest

import adcli
from adcli.engine.defaults import DEFAULT_MODELS
from adcli.errors import PresetError
from adcli.outputs.files import read_metadata
from adcli.presets import load_settings
from adcli.presets import loader
from tests.support.batch_helpers import image, one_line_error, report_lines, run

FAST = ["--steps", "2", "--size", "32x32", "--quiet"]


def sampling(settings) -> tuple[int, float]:
    return settings.ad_iterations, settings.guidance


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"model": "tiny"}, (3, 7.5)),  # probed: SD1.5
    ({"model": "tiny-sdxl"}, (2, 7.0)),  # probed: SDXL
    ({"arch": "sd15"}, (3, 7.5)),  # named, with its default model
    ({"arch": "sdxl"}, (2, 7.0)),
    ({"model": "tiny", "ad_iterations": 5}, (5, 7.5)),  # the command line wins
])
def test_t2i_defaults_follow_the_architecture(overrides, expected):
    assert sampling(load_settings("t2i", overrides=overrides).settings) == expected


def test_an_explicit_arch_is_used_before_a_probe_and_picks_its_model():
    resolved = load_settings("t2i", overrides={"arch": "sd15"})
    assert resolved.settings.model == DEFAULT_MODELS["sd15"] and resolved.arch == "sd15"
    # a mismatch is left for the preflight check to report; the defaults follow what was asked for
    assert sampling(load_settings("t2i", overrides={"arch": "sd15", "model": "tiny-sdxl"}).settings) == (3, 7.5)


def test_a_user_preset_layers_over_the_built_in_per_arch_values(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text("ad_iterations: 4\n")
    assert sampling(load_settings("t2i", flat, {"model": "tiny"}).settings) == (4, 7.5)  # user beats built-in sd15
    own = tmp_path / "own.yaml"
    own.write_text("ad_iterations: 4\nby_arch:\n  sd15:\n    ad_iterations: 6\n  sdxl:\n    guidance: 5.0\n")
    assert sampling(load_settings("t2i", own, {"model": "tiny"}).settings) == (6, 7.5)
    assert sampling(load_settings("t2i", own, {"model": "tiny-sdxl"}).settings) == (4, 5.0)
    assert sampling(load_settings("t2i", own, {"model": "tiny", "ad_iterations": 1}).settings) == (1, 7.5)
    texture = tmp_path / "texture.yaml"
    texture.write_text("by_arch:\n  sdxl:\n    iterations: 50\n")  # any command's preset may have them
    assert load_settings("texture", texture, {"model": "tiny-sdxl"}).settings.iterations == 50
    assert load_settings("texture", texture, {"model": "tiny"}).settings.iterations == 200


@pytest.mark.parametrize(("text", "message"), [
    ("by_arch:\n  sd35:\n    guidance: 5\n", "by_arch names architecture 'sd35'; known: sd15, sdxl, flux, flux-schnell, sd3"),
    ("by_arch:\n  sd15:\n    model: other\n", "model belongs to the model and cannot differ by architecture"),
    ("by_arch:\n  sd15:\n    guidance: 0.5\n", "by_arch: sd15: guidance must be between 1 and 100"),
    ("by_arch:\n  sd15:\n    guidanse: 5\n", "unknown setting guidanse .did you mean guidance"),
])
def test_by_arch_sections_are_checked(tmp_path, text, message):
    preset = tmp_path / "p.yaml"
    preset.write_text(text)
    with pytest.raises(PresetError, match=message):
        load_settings("t2i", preset, {"model": "tiny"})


def test_the_cli_records_the_resolved_values_and_resumes_with_them(tmp_path):
    style = image(tmp_path / "s.png", 1, (32, 32))
    out = tmp_path / "out"
    result = run("t2i", "a cat", "--style", style, "--model", "tiny", *FAST, "-o", out, "--report", tmp_path / "r.jsonl")
    assert result.exit_code == 0, result.output
    [made] = list(out.glob("*.png"))
    settings = read_metadata(made)["settings"]
    assert (settings["ad_iterations"], settings["guidance"], settings["arch"]) == (3, 7.5, "auto")
    shown = run("info", made)
    assert shown.exit_code == 0 and re.search(r"^\s+ad_iterations\s+3$", shown.stdout, re.M), shown.stdout
    assert re.search(r"^\s+guidance\s+7\.5$", shown.stdout, re.M)
    again = run("t2i", "a cat", "--style", style, "--model", "tiny", *FAST, "-o", out, "--resume", "--report", tmp_path / "again.jsonl")
    assert again.exit_code == 0 and [line["status"] for line in report_lines(tmp_path / "again.jsonl")] == ["skipped"]
    other = run("t2i", "a cat", "--style", style, "--model", "tiny", *FAST, "--ad-iterations", "2", "-o", out, "--resume",
                "--report", tmp_path / "other.jsonl")
    assert [line["status"] for line in report_lines(tmp_path / "other.jsonl")] == ["done"]  # 2 is not what was made
    assert other.exit_code == 0


def test_when_the_model_cannot_be_probed_the_loaded_model_decides(tmp_path, monkeypatch):
    """A hub model not downloaded yet: its architecture is known only once it has loaded."""
    monkeypatch.setattr(loader, "_probed_arch", lambda model, config: None)
    style = image(tmp_path / "s.png", 1, (32, 32))
    planned = load_settings("t2i", overrides={"model": "tiny"})
    assert planned.needs_arch and sampling(planned.settings) == (2, 7.0)
    result = run("t2i", "a cat", "--style", style, "--model", "tiny", *FAST, "-o", tmp_path / "t.png", "--report", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    settings = read_metadata(tmp_path / "t.png")["settings"]
    assert (settings["ad_iterations"], settings["guidance"]) == (3, 7.5)
    page = (tmp_path / "r.html").read_text()
    assert "<dt>ad_iterations</dt><dd>3</dd>" in page and "<dt>guidance</dt><dd>7.5</dd>" in page


def test_the_api_uses_the_loaded_models_architecture(tmp_path):
    style = image(tmp_path / "s.png", 1, (32, 32))
    for name, expected in (("tiny", (3, 7.5)), ("tiny-sdxl", (2, 7.0))):
        model = adcli.load_model(name, device="cpu")
        [picture] = adcli.t2i(model, "a cat", style, steps=1, size="32x32")
        stored = json.loads(picture.info["adcli"])["settings"]
        assert (stored["ad_iterations"], stored["guidance"]) == expected


def test_help_shows_each_architectures_default():
    text = " ".join(run("t2i", "--help").stdout.replace("│", " ").split())
    assert "[default: 2; sd15: 3]" in text and "[default: 7.0; sd15: 7.5; flux: 3.5; sd3: 4.5]" in text
    assert "[default: 0.015; flux, sd3: 0.01]" in text  # architectures with one value: named together
    assert "[default: 50; flux-schnell: 4; sd3: 40]" in text  # a variant where it differs from its family
    assert "[default: 0.15]" in text  # one value for every architecture: shown once


def test_load_model_with_an_arch_picks_its_default_model(monkeypatch):
    import adcli.api as api

    loaded = []
    monkeypatch.setattr(api, "open_model", lambda loading: loaded.append(dict(loading)) or SimpleNamespace(notes=[]))
    adcli.load_model(arch="sdxl")
    adcli.load_model(arch="sd15")
    adcli.load_model()
    adcli.load_model("tiny", arch="sd15")
    assert [entry["model"] for entry in loaded] == [DEFAULT_MODELS["sdxl"], DEFAULT_MODELS["sd15"], DEFAULT_MODELS["sd15"], "tiny"]
    assert loaded[0]["arch"] == "sdxl"


def test_an_arch_mismatch_is_still_one_line(tmp_path):
    style = image(tmp_path / "s.png", 1, (32, 32))
    line = one_line_error(run("t2i", "a cat", "--style", style, "--model", "tiny-sdxl", "--arch", "sd15", *FAST))
    assert "--arch sd15 was asked for, but model tiny-sdxl is sdxl" in line
