"""The public API: the same pixels as the CLI for the same settings and seed, preset keys as
keywords with the CLI's checks, progress through a callback that can stop a run, metadata in
every returned image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import adcli
from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import image, pixels, run


@pytest.fixture(scope="module")
def model():
    return adcli.load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    return {
        "content": image(folder / "content.png", 1, (72, 48)),
        "style": image(folder / "style.png", 2),
        "style2": image(folder / "style2.png", 3, (48, 64)),
    }


def same_pixels(api_image: Image.Image, cli_path) -> None:
    assert np.array_equal(np.asarray(api_image.convert("RGB")).astype(int), pixels(cli_path))


def test_style_transfer_through_the_api_equals_the_cli(model, files, tmp_path):
    result = adcli.style_transfer(model, files["content"], [files["style"], files["style2"]], iterations=3, size="64", seed=5)
    out = tmp_path / "cli.png"
    cli = run("style-transfer", files["content"], "--style", files["style"], "--style", files["style2"], "--model", "tiny",
              "--iterations", "3", "--size", "64", "--seed", "5", "-o", out, "--quiet")
    assert cli.exit_code == 0, cli.output
    same_pixels(result, out)
    assert result.size == (64, 40)  # the content's 72×48 aspect ratio, longer side 64
    stored = json.loads(result.info["adcli"])
    assert stored["settings"]["iterations"] == 3 and stored["size_used"] == "64x40"
    assert stored["seed"] == read_metadata(out)["seed"]


@pytest.mark.slow
def test_appearance_texture_and_expand_equal_the_cli(model, files, tmp_path):
    appearance = adcli.appearance(model, files["content"], files["style"], iterations=2, size="48x48")
    assert run("appearance", files["content"], "--appearance", files["style"], "--model", "tiny", "--iterations", "2",
               "--size", "48x48", "-o", tmp_path / "a.png", "--quiet").exit_code == 0
    same_pixels(appearance, tmp_path / "a.png")

    textures = adcli.texture(model, files["style"], num_images=2, mode="sample", steps=3, ad_iterations=1, size="48x48", seed=2)
    assert len(textures) == 2 and not np.array_equal(np.asarray(textures[0]), np.asarray(textures[1]))
    assert run("texture", "-r", files["style"], "--num-images", "2", "--mode", "sample", "--steps", "3", "--ad-iterations", "1",
               "--size", "48x48", "--seed", "2", "--model", "tiny", "-o", tmp_path / "t", "--quiet").exit_code == 0
    same_pixels(textures[1], tmp_path / "t" / "style_texture_1.png")

    wide = adcli.expand(model, files["style"], size=(128, 64), window=8, stride=4, steps=2, ad_iterations=1)
    assert wide.size == (128, 64)
    assert run("expand", "-r", files["style"], "--size", "128x64", "--window", "8", "--stride", "4", "--steps", "2",
               "--ad-iterations", "1", "--model", "tiny", "-o", tmp_path / "e.png", "--quiet").exit_code == 0
    same_pixels(wide, tmp_path / "e.png")


def test_t2i_equals_the_cli(model, files, tmp_path):
    [picture] = adcli.t2i(model, "a lighthouse", files["style"], steps=3, ad_iterations=1, size="64x64", seed=9)
    assert run("t2i", "a lighthouse", "--style", files["style"], "--steps", "3", "--ad-iterations", "1", "--size", "64x64",
               "--seed", "9", "--model", "tiny", "-o", tmp_path / "t.png", "--quiet").exit_code == 0
    same_pixels(picture, tmp_path / "t.png")


def test_finetune_vae_equals_the_cli_and_leaves_the_model_alone(model, files, tmp_path):
    before = {k: v.clone() for k, v in model.backend.vae.state_dict().items()}
    folder = adcli.finetune_vae(model, files["style"], tmp_path / "api-vae", steps=3, crop_size=32)
    assert run("finetune-vae", files["style"], "--model", "tiny", "--steps", "3", "--crop-size", "32", "--device", "cpu",
               "-o", tmp_path / "cli-vae", "--quiet").exit_code == 0
    from safetensors.torch import load_file

    api_weights = load_file(folder / "diffusion_pytorch_model.safetensors")
    cli_weights = load_file(tmp_path / "cli-vae" / "diffusion_pytorch_model.safetensors")
    assert all(np.array_equal(api_weights[k].numpy(), cli_weights[k].numpy()) for k in api_weights)
    assert all(np.array_equal(before[k].numpy(), v.numpy()) for k, v in model.backend.vae.state_dict().items())


def test_unknown_keyword_names_it_and_the_closest_key(model, files):
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'iteration'.*did you mean 'iterations'"):
        adcli.style_transfer(model, files["content"], files["style"], iteration=3)
    with pytest.raises(TypeError, match=r"vae is chosen when the model loads"):
        adcli.texture(model, files["style"], vae="other/")
    with pytest.raises(TypeError, match=r"load_model\(\) got an unexpected keyword argument 'dtyp'.*'dtype'"):
        adcli.load_model("tiny", dtyp="fp32")


@pytest.mark.parametrize(("keyword", "value", "message"), [
    ("lr", float("nan"), "lr must be a finite number"),
    ("iterations", 0, "iterations must be between 1"),
    ("size", "100x64", "multiple of 8"),
    ("content_weight", "much", "content_weight must be a number"),
])
def test_bad_values_are_value_errors_naming_the_key(model, files, keyword, value, message):
    with pytest.raises(ValueError, match=message):
        adcli.style_transfer(model, files["content"], files["style"], **{keyword: value})


def test_callback_sees_every_iteration_and_can_stop_the_run(model, files):
    seen = []

    def callback(info):
        seen.append((info["step"], info["total"], info["loss"]))
        return info["step"] < 4

    result = adcli.style_transfer(model, files["content"], files["style"], iterations=20, size="32x32", callback=callback)
    assert [step for step, _, _ in seen] == [1, 2, 3, 4] and all(total == 20 for _, total, _ in seen)
    assert json.loads(result.info["adcli"])["stopped_at_step"] == 4

    sampling = []
    adcli.t2i(model, "x", files["style"], steps=2, ad_iterations=2, size="32x32", callback=lambda info: sampling.append(
        (info["step"], info["ad_iteration"], info["ad_iterations"])))
    assert sampling == [(1, 1, 2), (1, 2, 2), (2, 1, 2), (2, 2, 2)]


def test_save_writes_the_settings_in_every_format(model, files, tmp_path):
    result = adcli.style_transfer(model, files["content"], files["style"], iterations=2, size="32x32")
    for name in ("a.png", "b.jpg", "c.webp"):
        path = adcli.save(result, tmp_path / name)
        assert read_metadata(path)["settings"]["iterations"] == 2


def test_pictures_in_memory_are_inputs_too(model, files):
    array = np.asarray(Image.open(files["style"]).convert("RGB"))
    from_path = adcli.texture(model, files["style"], iterations=2, size="32x32")[0]
    from_array = adcli.texture(model, array, iterations=2, size="32x32")[0]
    from_pil = adcli.texture(model, Image.fromarray(array), iterations=2, size="32x32")[0]
    assert np.array_equal(np.asarray(from_array), np.asarray(from_pil))
    assert json.loads(from_array.info["adcli"])["inputs"]["reference"] == ["<in-memory image 64x64>"]
    assert from_path.size == from_array.size


def test_from_pipe_shares_the_pipeline_and_leaves_it_as_it_was(files):
    """A pipeline unlike the built-in tiny model: its own output, processors and flags are unchanged after a run."""
    import torch

    from tests.support.pipelines import own_sd15_pipeline

    pipe = own_sd15_pipeline()

    def own_output():
        return pipe("a house", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent",
                    height=64, width=64).images

    before = own_output()
    processors = dict(pipe.unet.attn_processors)
    grads = [p.requires_grad for p in pipe.unet.parameters()]
    model = adcli.from_pipe(pipe)
    assert model.backend.denoiser is pipe.unet and model.backend.vae is pipe.vae  # shared, not copied
    result = adcli.texture(model, files["style"], iterations=3, size="64x64", tile="xy")[0]
    assert result.size == (64, 64)
    assert torch.equal(own_output(), before)
    assert all(pipe.unet.attn_processors[name] is processor for name, processor in processors.items())
    assert [p.requires_grad for p in pipe.unet.parameters()] == grads


@pytest.mark.slow
def test_a_lora_changes_the_result_and_scale_zero_does_not(files, tmp_path):
    from tests.support.loras import lora_layers, save_kohya_lora

    lora = save_kohya_lora(lora_layers("sd15"), tmp_path / "ink.safetensors")
    plain = adcli.load_model("tiny", device="cpu")
    settings = {"iterations": 3, "size": "32x32", "seed": 1}
    base = np.asarray(adcli.texture(plain, files["style"], **settings)[0])
    zero = adcli.texture(adcli.load_model("tiny", device="cpu", loras=[(lora, 0.0)]), files["style"], **settings)[0]
    full = adcli.texture(adcli.load_model("tiny", device="cpu", loras=f"{lora}:1.0"), files["style"], **settings)[0]
    assert np.array_equal(np.asarray(zero), base)
    assert not np.array_equal(np.asarray(full), base)
    [recorded] = json.loads(full.info["adcli"])["loras"]
    assert recorded["scale"] == 1.0 and recorded["sha256"] and recorded["name"] == str(lora)
    with pytest.raises(ValueError, match="LoRA"):
        adcli.load_model("tiny", device="cpu", loras=[(tmp_path / "missing.safetensors", 1.0)])


def test_label_maps_in_memory_work_like_files(model):
    """Pictures in memory are named \"reference\"/\"target\" (files by their stems), so their seeds differ
    from the files'; arrays and PIL images of the same maps give the same texture."""
    from pathlib import Path

    masks = Path(__file__).resolve().parents[2] / "samples" / "masks"
    files = {name: masks / f"{name}.png" for name in ("source_texture", "source_labels", "target_labels")}
    arrays = {name: np.asarray(Image.open(path).convert("RGB")) for name, path in files.items()}
    settings = {"iterations": 2, "size": "48"}
    from_files = adcli.texture(model, files["source_texture"], source_mask=files["source_labels"],
                               target_mask=files["target_labels"], **settings)[0]
    from_arrays = adcli.texture(model, arrays["source_texture"], source_mask=arrays["source_labels"],
                                target_mask=arrays["target_labels"], **settings)[0]
    pil = {name: Image.fromarray(array) for name, array in arrays.items()}
    from_pil = adcli.texture(model, pil["source_texture"], source_mask=pil["source_labels"],
                             target_mask=pil["target_labels"], **settings)[0]
    assert from_files.size == from_arrays.size == (48, 32)  # the target map's 3:2, longer side 48
    assert np.array_equal(np.asarray(from_arrays), np.asarray(from_pil))
    assert json.loads(from_pil.info["adcli"])["inputs"]["labels"] == json.loads(from_files.info["adcli"])["inputs"]["labels"]
    with pytest.raises(TypeError, match="run option"):
        adcli.texture(model, files["source_texture"], preview_every=5)
