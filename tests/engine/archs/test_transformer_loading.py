"""Loading FLUX/SD3 models: diffusers folders, hub ids offline, single transformer files in the original
(BFL / Stability) and diffusers layouts with a model config, a separate 16-channel VAE."""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxTransformer2DModel
from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers
from safetensors.torch import save_file

from adcli.engine.archs.flux_original import flux_original_to_diffusers
from adcli.engine.archs.tiny_transformers import FLUX_VAE_FACTORS, tiny_flux_pipeline, tiny_sd3_pipeline, tiny_vae16
from adcli.engine.archs.transformer_loading import load_transformer_components
from adcli.engine.tiny import build_tiny_components
from adcli.errors import ModelLoadError
from tests.support.transformer_checkpoints import flux_to_original, save_diffusers_layout, save_original

F32 = torch.float32


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The tiny FLUX.1-dev and SD3.5 pipelines saved as diffusers folders, and the pipelines."""
    root = tmp_path_factory.mktemp("models")
    flux, sd3 = tiny_flux_pipeline(), tiny_sd3_pipeline()
    flux.save_pretrained(root / "flux")
    sd3.save_pretrained(root / "sd3")
    return root, flux, sd3


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    ours, theirs = a.state_dict(), b.state_dict()
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_diffusers_folders(saved):
    root, flux, sd3 = saved
    arch, components = load_transformer_components(str(root / "flux"), dtype=F32, arch="flux")
    assert arch == "flux" and type(components["text_encoder_2"]).__name__ == "T5EncoderModel"
    assert same_weights(components["transformer"], flux.transformer) and same_weights(components["vae"], flux.vae)
    assert components["tokenizer_2"]("a cat").input_ids == flux.tokenizer_2("a cat").input_ids
    arch, components = load_transformer_components(str(root / "sd3"), dtype=F32)
    assert arch == "sd3" and same_weights(components["transformer"], sd3.transformer)
    assert same_weights(components["text_encoder_3"], sd3.text_encoder_3)


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_original_layout_files_round_trip_bit_identical(saved, tmp_path, prefix):
    root, flux, sd3 = saved
    flux_file = save_original(flux.transformer, tmp_path / "flux1-dev.safetensors", prefix)
    sd3_file = save_original(sd3.transformer, tmp_path / "sd3.5_medium.safetensors", prefix)
    arch, components = load_transformer_components(str(flux_file), dtype=F32, model_config=str(root / "flux"))
    assert arch == "flux" and same_weights(components["transformer"], flux.transformer)
    arch, components = load_transformer_components(str(sd3_file), dtype=F32, model_config=str(root / "sd3"), arch="sd3")
    assert arch == "sd3" and same_weights(components["transformer"], sd3.transformer)


def test_diffusers_layout_files(saved, tmp_path):
    root, flux, sd3 = saved
    for name, pipe in [("flux", flux), ("sd3", sd3)]:
        path = save_diffusers_layout(pipe.transformer, tmp_path / f"{name}.safetensors", prefix="transformer.")
        arch, components = load_transformer_components(str(path), dtype=F32, model_config=str(root / name))
        assert arch == name and same_weights(components["transformer"], pipe.transformer)


def test_bfloat16_loads_cast_every_weight(saved, tmp_path):
    root, flux, _ = saved
    path = save_original(flux.transformer, tmp_path / "flux.safetensors")
    _, components = load_transformer_components(str(path), dtype=torch.bfloat16, model_config=str(root / "flux"))
    transformer = components["transformer"]
    assert {p.dtype for p in transformer.parameters()} == {torch.bfloat16}
    reference = flux.transformer.state_dict()
    assert all(torch.equal(v, reference[k].bfloat16()) for k, v in transformer.state_dict().items())


def test_our_flux_conversion_equals_diffusers_on_flux1s_shapes():
    """diffusers' converter works at FLUX.1's width only (3072, written in); ours reads the widths from
    the tensors. On a FLUX.1-shaped checkpoint (real rows, one column each, to stay small) both must
    give the same tensors under the same names — and the test writer must be their inverse."""
    with torch.device("meta"):
        shapes = FluxTransformer2DModel().state_dict()  # FLUX.1's default config
    generator = torch.Generator().manual_seed(0)
    fake = {k: torch.randn((v.shape[0], 1) if v.ndim == 2 else tuple(v.shape), generator=generator)
            for k, v in shapes.items()}
    original = flux_to_original(fake)
    ours = flux_original_to_diffusers(dict(original))
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(original))
    assert ours.keys() == theirs.keys() == fake.keys()
    assert all(torch.equal(ours[k], theirs[k]) and torch.equal(ours[k], fake[k]) for k in fake)


def test_single_file_mistakes_are_one_line_errors(saved, tmp_path):
    root, flux, sd3 = saved
    flux_file = save_original(flux.transformer, tmp_path / "flux1-dev.safetensors")
    cases = [
        (dict(model=str(flux_file)), "pass model_config with a diffusers folder"),
        (dict(model=str(flux_file), model_config=str(root / "sd3")), "is SD3 but flux1-dev.safetensors is a FLUX"),
        (dict(model=str(flux_file), model_config=str(root / "flux"), arch="sd3"), "is a FLUX transformer, but arch sd3"),
        (dict(model=str(root / "sd3"), arch="flux"), "is an SD3 transformer, but arch flux"),
        (dict(model=str(tmp_path / "missing.gguf")), "does not exist"),
        (dict(model="nobody/no-such-flux"), "model 'nobody/no-such-flux' could not be loaded: HF_HUB_OFFLINE is set"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ModelLoadError) as error:
            load_transformer_components(dtype=F32, **kwargs)
        assert message in str(error.value) and "\n" not in str(error.value), kwargs


def test_a_file_with_a_missing_tensor_is_an_error(saved, tmp_path):
    root, flux, _ = saved
    tensors = flux_to_original(flux.transformer.state_dict())
    del tensors["single_blocks.37.linear2.weight"]
    save_file(tensors, str(tmp_path / "cut.safetensors"))
    with pytest.raises(ModelLoadError, match="cut.safetensors"):
        load_transformer_components(str(tmp_path / "cut.safetensors"), dtype=F32, model_config=str(root / "flux"))


def test_a_separate_vae_must_have_16_channels(saved, tmp_path):
    root, _, _ = saved
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        own = tiny_vae16(FLUX_VAE_FACTORS)
    own.save_pretrained(tmp_path / "own-vae")
    _, components = load_transformer_components(str(root / "flux"), dtype=F32, vae=str(tmp_path / "own-vae"))
    assert same_weights(components["vae"], own)
    build_tiny_components("tiny")["vae"].save_pretrained(tmp_path / "sd-vae")
    with pytest.raises(ModelLoadError, match="has 4 latent channels; FLUX and SD3 need a 16-channel VAE"):
        load_transformer_components(str(root / "flux"), dtype=F32, vae=str(tmp_path / "sd-vae"))
