"""Architecture and self-attention layer count read from configs and headers, never from weights."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from adcli.engine.archs.unet_attention import self_attention_names
from adcli.engine.archs.unet import count_self_attention
from adcli.engine.probe import ModelProbe, probe_model
from adcli.engine.tiny import build_tiny_components
from adcli.errors import ModelLoadError
from tests.support.ldm_checkpoint import save_ldm_checkpoint
from tests.support.pipelines import own_sd15_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The tiny SD1.5 and SDXL models as diffusers folders and single-file checkpoints, and a user's pipeline folder."""
    root = tmp_path_factory.mktemp("probe")
    sd15, sdxl = build_tiny_components("tiny"), build_tiny_components("tiny-sdxl")
    StableDiffusionPipeline(**sd15, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(root / "sd15")
    StableDiffusionXLPipeline(**sdxl).save_pretrained(root / "sdxl")
    own_sd15_pipeline().save_pretrained(root / "own")
    save_ldm_checkpoint(sd15, root / "sd15.safetensors", "sd15")
    save_ldm_checkpoint(sdxl, root / "sdxl.safetensors", "sdxl")
    return root


def test_the_tiny_models(tiny_sd15, tiny_sdxl):
    assert probe_model("tiny") == ModelProbe("sd15", len(self_attention_names(tiny_sd15.denoiser))) == ("sd15", 16, None)
    assert probe_model("tiny-sdxl") == ModelProbe("sdxl", len(self_attention_names(tiny_sdxl.denoiser))) == ("sdxl", 70, None)


def test_counting_from_a_config_matches_the_built_unet():
    unet = own_sd15_pipeline().unet
    assert count_self_attention(dict(unet.config)) == len(self_attention_names(unet)) == 10
    # SDXL base's published layout: transformer depths 1/2/10
    sdxl_base = {
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "layers_per_block": 2, "transformer_layers_per_block": [1, 2, 10],
    }
    assert count_self_attention(sdxl_base) == 70


def test_diffusers_folders(saved):
    assert probe_model(str(saved / "sd15")) == ("sd15", 16, None)
    assert probe_model(str(saved / "sdxl")) == ("sdxl", 70, None)
    assert probe_model(str(saved / "own")) == ("sd15", 10, None)
    assert probe_model(str(saved)) is None  # not a model folder: the loader says why


def test_single_file_checkpoints_from_their_header(saved):
    assert probe_model(str(saved / "sd15.safetensors")) == ("sd15", 16, None)
    assert probe_model(str(saved / "sdxl.safetensors")) == ("sdxl", 70, None)
    assert probe_model(str(saved / "sd15.safetensors"), model_config=str(saved / "own")) == ("sd15", 16, None)
    with pytest.raises(ModelLoadError, match="model_config .* is sdxl"):
        probe_model(str(saved / "sd15.safetensors"), model_config=str(saved / "sdxl"))


def test_a_broken_checkpoint_is_a_one_line_error(tmp_path):
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelLoadError, match="broken.safetensors"):
        probe_model(str(tmp_path / "broken.safetensors"))


def test_a_hub_id_only_when_its_configs_are_cached(saved, tmp_path, monkeypatch):
    from huggingface_hub import constants

    snapshot = tmp_path / "models--someone--tiny-xl" / "snapshots" / "abc123"
    (snapshot / "unet").mkdir(parents=True)
    (snapshot / "unet" / "config.json").write_text((saved / "sdxl" / "unet" / "config.json").read_text())
    (snapshot / "model_index.json").write_text(json.dumps({
        "unet": ["diffusers", "UNet2DConditionModel"], "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    }))
    (tmp_path / "models--someone--tiny-xl" / "refs").mkdir()
    (tmp_path / "models--someone--tiny-xl" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert probe_model("someone/tiny-xl") == ("sdxl", 70, None)
    assert probe_model("someone/not-downloaded") is None


@pytest.mark.subprocess
def test_probing_imports_neither_torch_nor_diffusers():
    code = "import sys, adcli.engine.probe as p; p.probe_model('tiny'); print('torch' in sys.modules or 'diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
