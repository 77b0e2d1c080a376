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


def test_the_registry_lists_four_families_and_everything_derives_from_it():
    assert archs.names() == ("sd15", "sdxl", "flux", "sd3")
    assert typing.get_args(SETTINGS["arch"].annotation) == ("auto", "sd15", "sdxl", "flux", "sd3")
    assert SETTINGS["arch"].help.startswith("sd15, sdxl, flux or sd3:")
    assert DEFAULT_MODELS == {
        "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5", "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
        "flux": "black-forest-labs/FLUX.1-dev", "sd3": "stabilityai/stable-diffusion-3.5-medium",
    }
    assert TINY_MODELS == {"tiny": "sd15", "tiny-sd15": "sd15", "tiny-sdxl": "sdxl", "tiny-flux": "flux",
                           "tiny-flux-schnell": "flux", "tiny-sd3": "sd3"}
    assert archs.preset_keys() == ("sd15", "sdxl", "flux", "flux-schnell", "sd3")
    assert archs.titles() == "Stable Diffusion 1.5, SDXL, FLUX.1 or Stable Diffusion 3.5"
    with pytest.raises(ModelLoadError, match="unknown architecture 'sd4': expected one of sd15, sdxl, flux, sd3"):
        archs.get("sd4")


@pytest.mark.subprocess
def test_the_registry_and_its_modules_import_neither_torch_nor_diffusers():
    code = (
        "import sys, adcli.engine.archs as a, adcli.engine.defaults, adcli.engine.probe; "
        "print([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("tiny, name, layers, channels, multiple, variant", [
    ("tiny", "sd15", 16, 4, 8, None), ("tiny-sdxl", "sdxl", 70, 4, 8, None), ("tiny-flux", "flux", 57, 16, 16, None),
    ("tiny-flux-schnell", "flux", 57, 16, 16, "schnell"), ("tiny-sd3", "sd3", 37, 16, 16, None),
])
def test_each_tiny_model_keeps_its_published_layout(tiny, name, layers, channels, multiple, variant):
    """The probe's count (from the published config, no torch) is the built model's, and the
    architecture's geometry is its VAE's; FLUX.1-schnell is told apart by its config."""
    backend = load_backend(tiny, device=CPU, dtype=torch.float32)
    arch = archs.get(name)
    assert backend.arch is arch and archs.tiny_model_arch(tiny) is arch
    assert probe_model(tiny) == (name, layers, variant)
    assert arch.count_layers(dict(backend.denoiser.config)) == layers
    assert arch.variant_of(dict(backend.denoiser.config)) == variant
    assert backend.preset_key == (name if variant is None else f"{name}-{variant}")
    assert len(arch.attention_layers(backend.denoiser)) == layers
    if name in ("sd15", "sdxl"):
        assert len(self_attention_names(backend.denoiser)) == layers
    assert arch.latent_channels == backend.vae.config.latent_channels == channels
    assert arch.vae_scale_factor == backend.vae_scale_factor == 8 and backend.size_multiple == multiple
    assert backend.native_size() == (64, 64)  # the tiny models' sample size 8 × 8 pixels per latent
    assert len(arch.preview_factors) == channels


def test_detection_rules_claim_each_model_once():
    """The families' rules are disjoint: a pipeline, a model index and a denoiser config each have
    exactly one claimant."""
    for tiny, name in (("tiny", "sd15"), ("tiny-sdxl", "sdxl"), ("tiny-flux", "flux"), ("tiny-sd3", "sd3")):
        components = build_tiny_components(tiny)
        arch = archs.get(name)
        pipe = arch.pipeline(components)
        index = {key: ["x", type(value).__name__] for key, value in components.items() if value is not None}
        index["_class_name"] = type(pipe).__name__
        denoiser = components[arch.denoiser_name]
        config = dict(denoiser.config) | {"_class_name": type(denoiser).__name__}
        assert [a.name for a in archs.ARCHITECTURES if a.claims_pipe(pipe)] == [name]
        assert [a.name for a in archs.ARCHITECTURES if a.claims_index(index)] == [name]
        assert [a.name for a in archs.ARCHITECTURES if a.claims_denoiser_config(config)] == [name]
    other_index = {"_class_name": "LuminaPipeline", "transformer": ["diffusers", "LuminaNextDiT2DModel"]}
    with pytest.raises(ModelLoadError, match="is a LuminaPipeline, which adcli cannot run: it runs Stable Diffusion 1.5, "
                                             "SDXL, FLUX.1 or Stable Diffusion 3.5"):
        archs.detect_index(other_index, "someone/lumina")


class _Renamed(SD15):
    """A "new architecture" for the test: SD1.5's layout under another name and tiny model."""

    name = "renamed"
    title = "Renamed SD"
    default_model = "someone/renamed"
    tiny_models = ("tiny-renamed",)


def test_a_new_architecture_is_one_subclass_and_one_registration(monkeypatch):
    """Registered, it is loadable, probed, listed and named by its loaded model; nothing else changes."""
    monkeypatch.setattr(archs, "ARCHITECTURES", (*archs.ARCHITECTURES, _Renamed()))
    assert archs.names() == ("sd15", "sdxl", "flux", "sd3", "renamed")
    assert archs.default_models()["renamed"] == "someone/renamed"
    assert probe_model("tiny-renamed") == ("renamed", 16, None)
    backend = load_backend("tiny-renamed", device=CPU, dtype=torch.float32, arch="renamed")
    assert backend.arch.name == "renamed" and backend.arch.title == "Renamed SD"
    with pytest.raises(ModelLoadError, match="arch sd15 was asked for, but model tiny-renamed is renamed"):
        load_backend("tiny-renamed", device=CPU, dtype=torch.float32, arch="sd15")


@pytest.mark.parametrize("name, layers", [("sd15", 16), ("sdxl", 70), ("flux", 57), ("sd3", 37)])
def test_published_configs_build_the_released_layout(name, layers):
    """The full-size denoisers the benchmarks build (on the meta device here: shapes only) have the
    released layer counts, the count the probe reads from their configs."""
    from benchmarks.archs import meta_denoiser

    arch = archs.get(name)
    denoiser = meta_denoiser(name)
    assert len(arch.attention_layers(denoiser)) == layers == arch.count_layers(arch.published_configs[arch.denoiser_name])
