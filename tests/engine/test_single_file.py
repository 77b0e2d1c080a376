"""Single-file checkpoints: tiny models written in the original SD layout load back bit-identically."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import load_file, save_file

from adcli.engine import archs
from adcli.engine.single_file import detect_arch, load_single_file_vae
from adcli.engine.tiny import build_tiny_components
from adcli.errors import ModelLoadError
from tests.support.ldm_checkpoint import save_ldm_checkpoint

F32 = torch.float32


def assert_same_weights(expected: torch.nn.Module, loaded: torch.nn.Module) -> None:
    a, b = expected.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    """Tiny SD1.5 as a diffusers config folder and as an original-layout single file. The file also
    carries the extra tensors real checkpoints have (position_ids, schedule buffers), to be ignored."""
    root = tmp_path_factory.mktemp("sd15")
    components = build_tiny_components("tiny")
    StableDiffusionPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    ).save_pretrained(root / "config")
    path = save_ldm_checkpoint(components, root / "model.safetensors", "sd15")
    sd = load_file(path)
    sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    sd["alphas_cumprod"] = torch.linspace(1, 0, 1000)
    save_file(sd, str(path))
    return components, path, root / "config"


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdxl")
    components = build_tiny_components("tiny-sdxl")
    StableDiffusionXLPipeline(**components).save_pretrained(root / "config")
    path = save_ldm_checkpoint(components, root / "model.safetensors", "sdxl")
    return components, path, root / "config"


def test_sd15_round_trip(sd15):
    components, path, config = sd15
    assert detect_arch(path) == "sd15"
    loaded = archs.get("sd15").load_single_file(path, str(config), F32, True)
    assert set(loaded) == set(components)
    for name in ("unet", "vae", "text_encoder"):
        assert_same_weights(components[name], loaded[name])
    assert isinstance(loaded["scheduler"], DDIMScheduler)
    assert loaded["scheduler"].config.steps_offset == 1
    assert loaded["tokenizer"]("a cat").input_ids == components["tokenizer"]("a cat").input_ids


@pytest.mark.slow
def test_sdxl_round_trip(sdxl):
    components, path, config = sdxl
    assert detect_arch(path) == "sdxl"
    loaded = archs.get("sdxl").load_single_file(path, str(config), F32, True)
    assert set(loaded) == set(components)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        assert_same_weights(components[name], loaded[name])
    assert isinstance(loaded["scheduler"], DDIMScheduler)


def test_dtype_is_applied(sd15):
    _, path, config = sd15
    loaded = archs.get("sd15").load_single_file(path, str(config), torch.float16, True)
    assert {loaded[n].dtype for n in ("unet", "vae", "text_encoder")} == {torch.float16}


@pytest.mark.parametrize("kind", ["truncated", "text", "empty", "missing"])
def test_unreadable_files(sd15, tmp_path, kind):
    _, good, config = sd15
    path = tmp_path / "bad.safetensors"
    data = good.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("this is not a model\n" * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(ModelLoadError) as err:
        detect_arch(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    with pytest.raises(ModelLoadError):
        archs.get("sd15").load_single_file(path, str(config), F32, True)
    with pytest.raises(ModelLoadError):
        load_single_file_vae(path, config=str(config), dtype=F32, local_files_only=True)


def test_not_a_stable_diffusion_checkpoint(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(ModelLoadError, match="not a Stable Diffusion 1.5, SDXL, FLUX.1 or Stable Diffusion 3.5"):
        detect_arch(path)


def test_wrong_arch_and_wrong_config(sd15, sdxl):
    _, path, config = sd15
    with pytest.raises(ModelLoadError, match="not sdxl"):
        archs.get("sdxl").load_single_file(path, str(config), F32, True)
    with pytest.raises(ModelLoadError) as err:  # an SDXL config folder for an SD1.5 file
        archs.get("sd15").load_single_file(path, str(sdxl[2]), F32, True)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelLoadError, match="folder not found"):
        archs.get("sd15").load_single_file(path, "/no/such/dir", F32, True)


def test_missing_configs_offline(sd15, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    _, path, _ = sd15
    for config in (None, "adcli-tests/no-such-repo"):
        with pytest.raises(ModelLoadError) as err:
            archs.get("sd15").load_single_file(path, config, F32, True)
        message = str(err.value)
        assert "\n" not in message and str(path) in message and "model_config" in message
        assert "--model-config" in err.value.render(lambda name: "--" + name.replace("_", "-"))


def test_separate_vae_file(sd15, tmp_path):
    """A VAE file in original layout (with or without the first_stage_model. prefix) or in diffusers layout."""
    components, path, config = sd15
    ldm = {k: v for k, v in load_file(path).items() if k.startswith("first_stage_model.")}
    save_file(ldm, str(tmp_path / "prefixed.safetensors"))
    save_file({k.removeprefix("first_stage_model."): v for k, v in ldm.items()}, str(tmp_path / "bare.safetensors"))
    components["vae"].save_pretrained(tmp_path / "diffusers_vae")
    files = ["prefixed.safetensors", "bare.safetensors", "diffusers_vae/diffusion_pytorch_model.safetensors"]
    for name in files:
        # config: the pipeline folder (its vae/ subfolder) or a VAE folder itself
        for vae_config in (config, tmp_path / "diffusers_vae"):
            vae = load_single_file_vae(tmp_path / name, config=str(vae_config), dtype=F32, local_files_only=True)
            assert_same_weights(components["vae"], vae)
