"""The architecture seam: one registry that everything derives from, one module per family, and a
new family being one subclass plus one registration."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest
import torch

from adcli.engine import archs
from adcli.engine.archs.sd15 import SD15
from adcli.engine.archs.unet_attention import self_attention_names
from adcli.engine.defaults import DEFAULT_MODELS, TINY_MODELS
from adcli.engine.models import load_backend
from adcli.engine.probe import probe_model
from adcli.engine.tiny import build_tiny_components
from adcli.errors import ModelLoadError
from adcli.presets import SETTINGS

CPU = torch.device("cpu")


def test_the_registry_lists_sd15_and_sdxl_and_everything_derives_from_it():
    assert archs.names() == ("sd15", "sdxl")
    assert typing.get_args(SETTINGS["arch"].annotation) == ("auto", "sd15", "sdxl")
    assert SETTINGS["arch"].help.startswith("sd15 or sdxl:")
    assert DEFAULT_MODELS == {
        "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5", "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
    }
    assert TINY_MODELS == {"tiny": "sd15", "tiny-sd15": "sd15", "tiny-sdxl": "sdxl"}
    assert archs.titles() == "Stable Diffusion 1.5 or SDXL"
    with pytest.raises(ModelLoadError, match="unknown architecture 'flux': expected one of sd15, sdxl"):
        archs.get("flux")


@pytest.mark.subprocess
def test_the_registry_and_its_modules_import_neither_torch_nor_diffusers():
    code = (
        "import sys, adcli.engine.archs as a, adcli.engine.defaults, adcli.engine.probe; "
        "print([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("tiny, name, layers, channels", [("tiny", "sd15", 16, 4), ("tiny-sdxl", "sdxl", 70, 4)])
def test_each_tiny_model_keeps_its_published_layout(tiny, name, layers, channels):
    """The probe's count (from the published config, no torch) is the built model's, and the
    architecture's geometry is its VAE's."""
    backend = load_backend(tiny, device=CPU, dtype=torch.float32)
    arch = archs.get(name)
    assert backend.arch is arch and archs.tiny_model_arch(tiny) is arch
    assert probe_model(tiny) == (name, layers)
    assert len(arch.attention_layers(backend.denoiser)) == len(self_attention_names(backend.denoiser)) == layers
    assert arch.latent_channels == backend.vae.config.latent_channels == channels
    assert arch.vae_scale_factor == backend.vae_scale_factor == 8 and backend.size_multiple == 8
    assert backend.native_size() == (64, 64)  # the tiny UNets' sample size 8 × 8 pixels per latent
    assert len(arch.preview_factors) == channels


def test_detection_rules_claim_each_model_once():
    """The families' rules are disjoint: a pipeline, a model index and a denoiser config each have
    exactly one claimant."""
    for tiny, name in (("tiny", "sd15"), ("tiny-sdxl", "sdxl")):
        components = build_tiny_components(tiny)
        pipe = archs.get(name).pipeline(components)
        index = {key: ["x", type(value).__name__] for key, value in components.items()} | {"_class_name": type(pipe).__name__}
        config = dict(components["unet"].config)
        assert [a.name for a in archs.ARCHITECTURES if a.claims_pipe(pipe)] == [name]
        assert [a.name for a in archs.ARCHITECTURES if a.claims_index(index)] == [name]
        assert [a.name for a in archs.ARCHITECTURES if a.claims_denoiser_config(config)] == [name]
    flux_index = {"_class_name": "FluxPipeline", "transformer": ["diffusers", "FluxTransformer2DModel"],
                  "text_encoder_2": ["transformers", "T5EncoderModel"]}
    with pytest.raises(ModelLoadError, match="is a FluxPipeline, which adcli cannot run: it runs Stable Diffusion 1.5 or SDXL"):
        archs.detect_index(flux_index, "black-forest-labs/FLUX.1-dev")


class _Renamed(SD15):
    """A "new architecture" for the test: SD1.5's layout under another name and tiny model."""

    name = "renamed"
    title = "Renamed SD"
    default_model = "someone/renamed"
    tiny_models = ("tiny-renamed",)


def test_a_new_architecture_is_one_subclass_and_one_registration(monkeypatch):
    """Registered, it is loadable, probed, listed and named by its loaded model; nothing else changes."""
    monkeypatch.setattr(archs, "ARCHITECTURES", (*archs.ARCHITECTURES, _Renamed()))
    assert archs.names() == ("sd15", "sdxl", "renamed")
    assert archs.default_models()["renamed"] == "someone/renamed"
    assert probe_model("tiny-renamed") == ("renamed", 16)
    backend = load_backend("tiny-renamed", device=CPU, dtype=torch.float32, arch="renamed")
    assert backend.arch.name == "renamed" and backend.arch.title == "Renamed SD"
    with pytest.raises(ModelLoadError, match="arch sd15 was asked for, but model tiny-renamed is renamed"):
        load_backend("tiny-renamed", device=CPU, dtype=torch.float32, arch="sd15")
