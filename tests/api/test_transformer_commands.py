"""Every command on the tiny FLUX.1 and SD3.5 models, from the command line and from Python: each
exits 0, writes its image at the size asked for, and the API's picture equals the CLI's pixel for
pixel (the same settings, seed and inputs)."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.torch import load_file

import adcli
from tests.support.batch_helpers import pixels, run

pytestmark = pytest.mark.slow

SAMPLES = "samples"
CONTENT, STRUCTURE = f"{SAMPLES}/content/chelsea.jpg", f"{SAMPLES}/content/coffee.jpg"
STYLE, BRICK, GRASS = f"{SAMPLES}/style/hubble.jpg", f"{SAMPLES}/style/brick.jpg", f"{SAMPLES}/style/grass.jpg"
MASKS = f"{SAMPLES}/masks"
MODELS = ["tiny-flux", "tiny-sd3"]

# name → (command-line arguments before the common ones, API call on a model, the picture's size)
CASES = {
    "style-transfer": (["style-transfer", CONTENT, "--style", STYLE, "--size", "64", "--iterations", "3"],
                       lambda m: adcli.style_transfer(m, CONTENT, STYLE, size="64", iterations=3, seed=1), (64, 48)),
    "appearance": (["appearance", STRUCTURE, "--appearance", BRICK, "--size", "64", "--iterations", "3"],
                   lambda m: adcli.appearance(m, STRUCTURE, BRICK, size="64", iterations=3, seed=1), (64, 48)),
    "texture": (["texture", "-r", BRICK, "--size", "64x48", "--iterations", "3"],
                lambda m: adcli.texture(m, BRICK, size="64x48", iterations=3, seed=1)[0], (64, 48)),
    "texture-sample": (["texture", "-r", BRICK, "--mode", "sample", "--size", "64x64", "--steps", "3",
                        "--ad-iterations", "2", "--adain"],
                       lambda m: adcli.texture(m, BRICK, mode="sample", size="64x64", steps=3, ad_iterations=2,
                                               adain=True, seed=1)[0], (64, 64)),
    "texture-masked": (["texture", "-r", f"{MASKS}/source_texture.png", "--source-mask", f"{MASKS}/source_labels.png",
                        "--target-mask", f"{MASKS}/target_labels.png", "--size", "64", "--iterations", "3"],
                       lambda m: adcli.texture(m, f"{MASKS}/source_texture.png", source_mask=f"{MASKS}/source_labels.png",
                                               target_mask=f"{MASKS}/target_labels.png", size="64", iterations=3,
                                               seed=1)[0], (64, 48)),
    "texture-tile": (["texture", "-r", GRASS, "--tile", "xy", "--size", "64x64", "--iterations", "3"],
                     lambda m: adcli.texture(m, GRASS, tile="xy", size="64x64", iterations=3, seed=1)[0], (64, 64)),
    "t2i": (["t2i", "a red house", "--style", STYLE, "--size", "64x48", "--steps", "3", "--ad-iterations", "2"],
            lambda m: adcli.t2i(m, "a red house", STYLE, size="64x48", steps=3, ad_iterations=2, seed=1)[0], (64, 48)),
    "t2i-layout": (["t2i", "a cat", "--style", STYLE, "--layout", CONTENT, "--size", "64", "--steps", "4",
                    "--strength", "0.5", "--ad-iterations", "1"],
                   lambda m: adcli.t2i(m, "a cat", STYLE, layout=CONTENT, size="64", steps=4, strength=0.5,
                                       ad_iterations=1, seed=1)[0], (64, 48)),
    "t2i-tile": (["t2i", "moss", "--style", BRICK, "--tile", "x", "--size", "64x64", "--steps", "3", "--ad-iterations", "1"],
                 lambda m: adcli.t2i(m, "moss", BRICK, tile="x", size="64x64", steps=3, ad_iterations=1, seed=1)[0], (64, 64)),
    "expand": (["expand", "-r", GRASS, "--size", "96x64", "--window", "8", "--stride", "4", "--steps", "3",
                "--ad-iterations", "1", "--window-batch", "4"],
               lambda m: adcli.expand(m, GRASS, size=(96, 64), window=8, stride=4, steps=3, ad_iterations=1,
                                      window_batch=4, seed=1), (96, 64)),
    "expand-tile": (["expand", "-r", GRASS, "--size", "64x64", "--window", "8", "--stride", "4", "--steps", "2",
                     "--ad-iterations", "1", "--tile", "xy"],
                    lambda m: adcli.expand(m, GRASS, size=(64, 64), window=8, stride=4, steps=2, ad_iterations=1,
                                           tile="xy", seed=1), (64, 64)),
}


@pytest.fixture(scope="module")
def models():
    loaded: dict[str, object] = {}

    def get(name: str, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in loaded:
            loaded[key] = adcli.load_model(name, device="cpu", **options)
        return loaded[key]

    return get


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_command_runs_and_the_api_equals_the_cli(models, model, case, tmp_path):
    arguments, call, size = CASES[case]
    out = tmp_path / "cli.png"
    result = run(*arguments, "--model", model, "--seed", "1", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    made = call(models(model))
    assert made.size == size
    assert np.array_equal(np.asarray(made.convert("RGB")).astype(int), pixels(out))
    assert pixels(out).std() > 0  # a picture, not one flat colour


@pytest.mark.parametrize("model", MODELS)
def test_t2i_with_a_controlnet_from_the_cli_and_the_api(models, model, tmp_path):
    out = tmp_path / "cli.png"
    arguments = ["t2i", "a tower", "--style", STYLE, "--control", STRUCTURE, "--controlnet", "tiny", "--size", "64x48",
                 "--steps", "3", "--ad-iterations", "1", "--model", model, "--seed", "1", "-o", out, "--quiet"]
    assert run(*arguments).exit_code == 0
    controlled = models(model, controlnet="tiny")
    [made] = adcli.t2i(controlled, "a tower", STYLE, control=STRUCTURE, size="64x48", steps=3, ad_iterations=1, seed=1)
    assert np.array_equal(np.asarray(made).astype(int), pixels(out))
    [plain] = adcli.t2i(models(model), "a tower", STYLE, size="64x48", steps=3, ad_iterations=1, seed=1)
    assert not np.array_equal(np.asarray(plain), np.asarray(made))  # the ControlNet's residuals reached the model


@pytest.mark.parametrize("model", MODELS)
def test_finetune_vae_on_a_16_channel_vae_from_the_cli_and_the_api(models, model, tmp_path):
    """The folder written from the CLI and from Python holds the same decoder; a texture decodes with it."""
    assert run("finetune-vae", BRICK, "--model", model, "--steps", "3", "--crop-size", "64", "-o", tmp_path / "cli",
               "--quiet").exit_code == 0
    adcli.finetune_vae(models(model), BRICK, tmp_path / "api", steps=3, crop_size=64)
    cli, api = (load_file(tmp_path / name / "diffusion_pytorch_model.safetensors") for name in ("cli", "api"))
    assert cli.keys() == api.keys() and all((cli[key] == api[key]).all() for key in cli)
    tuned = adcli.load_model(model, device="cpu", vae=str(tmp_path / "cli"))
    assert tuned.backend.vae.config.latent_channels == 16
    out = tmp_path / "texture.png"
    assert run("texture", "-r", BRICK, "--model", model, "--vae", tmp_path / "cli", "--size", "64x64", "--iterations", "2",
               "-o", out, "--quiet").exit_code == 0
    made = adcli.texture(tuned, BRICK, size="64x64", iterations=2)[0]
    assert np.array_equal(np.asarray(made).astype(int), pixels(out))
