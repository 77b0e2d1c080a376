"""The real loading paths, fed with checkpoints these tests save from the tiny models."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import save_file

from adcli.engine.models import load_backend
from adcli.engine.tiny import build_tiny_components
from adcli.presets import SETTINGS
from adcli.errors import ModelLoadError
from adcli.outputs.files import read_metadata
from tests.support.ldm_checkpoint import save_ldm_checkpoint

CPU = torch.device("cpu")


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def sd15_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-sd15"
    components = build_tiny_components("tiny")
    StableDiffusionPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    ).save_pretrained(folder)
    return folder, components


@pytest.fixture(scope="module")
def changed_vae(tmp_path_factory):
    """A VAE that differs from the tiny one, saved as a diffusers folder and as one file."""
    vae = build_tiny_components("tiny")["vae"]
    with torch.no_grad():
        vae.decoder.conv_out.bias.add_(0.5)
    root = tmp_path_factory.mktemp("vae")
    vae.save_pretrained(root / "folder")
    save_file(vae.state_dict(), str(root / "vae.safetensors"))
    return vae, root


def test_local_diffusers_folder(sd15_folder):
    folder, components = sd15_folder
    backend = load_backend(str(folder), device=CPU, dtype=torch.float32)
    assert backend.arch.name == "sd15"
    assert same_weights(backend.denoiser, components["unet"])
    assert same_weights(backend.text_encoders[0], components["text_encoder"])
    assert backend.tokenizers[0]("a cat").input_ids == components["tokenizer"]("a cat").input_ids


def test_local_sdxl_folder(tmp_path):
    components = build_tiny_components("tiny-sdxl")
    StableDiffusionXLPipeline(**components).save_pretrained(tmp_path / "xl")
    backend = load_backend(str(tmp_path / "xl"), device=CPU, dtype=torch.float32)
    assert backend.arch.name == "sdxl" and len(backend.text_encoders) == 2
    assert same_weights(backend.text_encoders[1], components["text_encoder_2"])


def test_single_file_checkpoint_through_the_cli(cli, sd15_folder, images, tmp_path):
    folder, components = sd15_folder
    checkpoint = save_ldm_checkpoint(components, tmp_path / "tiny.safetensors", "sd15")
    _, reference = images
    out = tmp_path / "t.png"
    result = cli("texture", "-r", reference, "--model", checkpoint, "--model-config", folder,
                 "--size", "64x64", "--iterations", "2", "-q", "-o", out)
    assert result.exit_code == 0, result.output
    assert read_metadata(out)["settings"]["model"] == str(checkpoint)
    backend = load_backend(str(checkpoint), model_config=str(folder), device=CPU, dtype=torch.float32)
    assert same_weights(backend.denoiser, components["unet"])


@pytest.mark.parametrize("form", ["folder", "vae.safetensors"])
def test_separate_vae(cli, changed_vae, images, tmp_path, form):
    vae, root = changed_vae
    backend = load_backend("tiny", vae=str(root / form), device=CPU, dtype=torch.float32)
    assert same_weights(backend.vae, vae)
    _, reference = images
    out = tmp_path / "t.png"
    result = cli("texture", "-r", reference, "--vae", root / form, "--model", "tiny",
                 "--size", "64x64", "--iterations", "2", "-q", "-o", out)
    assert result.exit_code == 0, result.output
    assert read_metadata(out)["settings"]["vae"] == str(root / form)


def test_hub_id_without_network_names_the_model_and_the_way_out(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelLoadError) as caught:
        load_backend("someone/not-downloaded", device=CPU, dtype=torch.float32)
    message = caught.value.render(lambda name: SETTINGS[name].flag)  # as the command line spells it
    assert "someone/not-downloaded" in message and "--model /path" in message and "\n" not in message
    assert "model /path" in str(caught.value)  # the API names the keyword


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="no model_index.json"):
        load_backend(str(tmp_path), device=CPU, dtype=torch.float32)


def test_missing_vae(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_backend("tiny", vae=str(tmp_path / "vae.safetensors"), device=CPU, dtype=torch.float32)


def test_corrupted_checkpoint(cli, images, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    _, reference = images
    result = cli("texture", "-r", reference, "--model", bad, "--size", "64x64", "-q")
    assert result.exit_code == 2 and "broken.safetensors" in result.stderr and "Traceback" not in result.stderr
