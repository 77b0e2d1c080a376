"""Detection of FLUX.1 / SD3.5 models before loading: folders, single-file headers, GGUF headers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gguf
import pytest
import torch
from safetensors.torch import save_file

from adcli.engine.archs.tiny_transformers import tiny_flux_transformer, tiny_sd3_transformer
from adcli.engine.archs.transformer_detect import (
    check_arch,
    count_attention_layers,
    probe_transformer,
    probe_transformer_config,
)
from adcli.errors import ModelLoadError
from tests.support.gguf_files import write_gguf
from tests.support.transformer_checkpoints import flux_to_original, save_diffusers_layout, save_original, sd3_to_original

ROOT = Path(__file__).resolve().parents[3]


def cli_spelling(error: ModelLoadError) -> str:
    return error.render(lambda name: "--" + name.replace("_", "-"))


@pytest.fixture(scope="module")
def flux():
    return tiny_flux_transformer(guidance_embeds=True)


@pytest.fixture(scope="module")
def schnell():
    return tiny_flux_transformer(guidance_embeds=False)


@pytest.fixture(scope="module")
def sd3():
    return tiny_sd3_transformer()


def test_layer_counts_from_configs_follow_the_released_layouts():
    assert count_attention_layers({"_class_name": "FluxTransformer2DModel", "num_layers": 19, "num_single_layers": 38}) == 57
    medium = {"_class_name": "SD3Transformer2DModel", "num_layers": 24, "dual_attention_layers": list(range(13))}
    assert count_attention_layers(medium) == 37  # attn2 of blocks 0–12 counted as layers of their own
    assert count_attention_layers({"_class_name": "SD3Transformer2DModel", "num_layers": 38}) == 38  # Large
    dev = probe_transformer_config({"_class_name": "FluxTransformer2DModel", "guidance_embeds": True})
    schnell = probe_transformer_config({"_class_name": "FluxTransformer2DModel", "guidance_embeds": False})
    assert (dev.variant, schnell.variant) == ("dev", "schnell")
    assert probe_transformer_config({"_class_name": "UNet2DConditionModel"}) is None


def test_folders_of_saved_tiny_transformers(tmp_path, flux, schnell, sd3):
    for name, model in [("dev", flux), ("schnell", schnell), ("sd3", sd3)]:
        (tmp_path / name / "transformer").mkdir(parents=True)
        model.save_config(tmp_path / name / "transformer")
        pipeline = "StableDiffusion3Pipeline" if name == "sd3" else "FluxPipeline"
        (tmp_path / name / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    dev, fast, medium = (probe_transformer(str(tmp_path / n)) for n in ("dev", "schnell", "sd3"))
    assert (dev.arch, dev.attention_layers, dev.variant) == ("flux", 57, "dev")
    assert (fast.arch, fast.variant) == ("flux", "schnell")
    assert (medium.arch, medium.attention_layers, medium.variant) == ("sd3", 37, None)
    assert probe_transformer(str(tmp_path / "sd3" / "transformer")).arch == "sd3"  # a bare transformer folder


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_single_files_in_every_layout(tmp_path, flux, schnell, sd3, prefix):
    cases = [
        (save_original(flux, tmp_path / "dev.safetensors", prefix), ("flux", 57, "dev", "original")),
        (save_original(schnell, tmp_path / "schnell.safetensors", prefix), ("flux", 57, "schnell", "original")),
        (save_original(sd3, tmp_path / "sd3.safetensors", prefix), ("sd3", 37, None, "original")),
        (save_diffusers_layout(flux, tmp_path / "dev-d.safetensors"), ("flux", 57, "dev", "diffusers")),
        (save_diffusers_layout(sd3, tmp_path / "sd3-d.safetensors"), ("sd3", 37, None, "diffusers")),
    ]
    for path, expected in cases:
        probe = probe_transformer(str(path))
        assert (probe.arch, probe.attention_layers, probe.variant, probe.layout) == expected, path.name


def test_a_full_checkpoint_with_text_encoders_and_vae_is_read_by_its_transformer_keys(tmp_path, sd3):
    tensors = sd3_to_original(sd3.state_dict(), "model.diffusion_model.")
    tensors |= {"text_encoders.clip_l.transformer.text_model.final_layer_norm.weight": torch.ones(4),
                "first_stage_model.decoder.conv_in.weight": torch.ones(4, 4, 3, 3)}
    save_file(tensors, str(tmp_path / "sd3.5_medium.safetensors"))
    probe = probe_transformer(str(tmp_path / "sd3.5_medium.safetensors"))
    assert (probe.arch, probe.attention_layers) == ("sd3", 37)


def test_an_sd15_checkpoint_is_no_transformer(tmp_path):
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.ones(8, 4, 3, 3),
               "cond_stage_model.transformer.text_model.embeddings.position_ids": torch.ones(1, 77)},
              str(tmp_path / "sd15.safetensors"))
    assert probe_transformer(str(tmp_path / "sd15.safetensors")) is None


def test_gguf_headers(tmp_path, flux, sd3):
    write_gguf(flux_to_original(flux.state_dict()), tmp_path / "flux1-dev-Q8_0.gguf", "flux", gguf.GGMLQuantizationType.Q8_0)
    write_gguf(sd3_to_original(sd3.state_dict()), tmp_path / "sd3.5-Q8_0.gguf", "sd3", gguf.GGMLQuantizationType.Q8_0)
    dev, medium = probe_transformer(str(tmp_path / "flux1-dev-Q8_0.gguf")), probe_transformer(str(tmp_path / "sd3.5-Q8_0.gguf"))
    assert (dev.arch, dev.attention_layers, dev.variant) == ("flux", 57, "dev")
    assert (medium.arch, medium.attention_layers) == ("sd3", 37)
    with pytest.raises(ModelLoadError) as error:
        check_arch(dev, "sd3", "flux1-dev-Q8_0.gguf")
    assert cli_spelling(error.value).startswith("flux1-dev-Q8_0.gguf is a FLUX transformer, but --arch sd3 was asked for")
    assert "\n" not in str(error.value)
    check_arch(dev, "flux", "x")  # no error for the right architecture, nor for none asked
    check_arch(dev, None, "x")


def test_a_gguf_of_another_kind_and_a_broken_file(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "llm.gguf"), arch="llama")
    writer.add_tensor("blk.0.attn_q.weight", torch.ones(4, 4).numpy())
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    assert probe_transformer(str(tmp_path / "llm.gguf")) is None
    (tmp_path / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with pytest.raises(ModelLoadError, match="not a readable GGUF"):
        probe_transformer(str(tmp_path / "broken.gguf"))


@pytest.mark.subprocess
def test_detection_imports_neither_torch_nor_diffusers(tmp_path, flux, sd3):
    paths = [save_original(flux, tmp_path / "f.safetensors"), save_original(sd3, tmp_path / "s.safetensors")]
    write_gguf(flux_to_original(flux.state_dict()), tmp_path / "f.gguf", "flux", gguf.GGMLQuantizationType.Q8_0)
    script = (
        "import sys; from adcli.engine.archs.transformer_detect import probe_transformer\n"
        f"print([probe_transformer(p).arch for p in {[str(p) for p in paths] + [str(tmp_path / 'f.gguf')]!r}])\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["['flux', 'sd3', 'flux']", "[]"]
