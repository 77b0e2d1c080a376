"""LoRAs fused at load time: they change the model, scale 0 does not, bad files are one-line errors."""

from __future__ import annotations

import hashlib

import pytest
import torch
from safetensors.torch import save_file

from adcli.engine.models import load_backend
from adcli.engine.tiny import build_tiny_components
from adcli.errors import ModelLoadError
from tests.support.loras import RANK, lora_layers, save_diffusers_lora, save_kohya_lora

CPU = torch.device("cpu")


def tiny(loras=()):
    return load_backend("tiny", device=CPU, dtype=torch.float32, loras=loras)


@pytest.fixture(scope="module")
def sd15_lora(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora")
    layers = lora_layers("sd15")
    return save_diffusers_lora(layers, folder, "sd15"), save_kohya_lora(layers, folder / "kohya.safetensors"), layers


@torch.no_grad()
def unet_output(backend) -> torch.Tensor:
    latents = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    inputs = backend.model_inputs(backend.encode_prompts(["a cat"]), 1, (8, 8))
    return backend.denoiser(latents, torch.tensor(500), **inputs).sample


def test_a_lora_changes_the_model_and_scale_zero_does_not(sd15_lora):
    path, _, _ = sd15_lora
    plain, fused, zero = tiny(), tiny([(str(path), 1.0)]), tiny([(str(path), 0.0)])
    assert not torch.allclose(unet_output(plain), unet_output(fused), atol=1e-4)
    assert not torch.allclose(plain.encode_prompts(["a cat"])["embeds"], fused.encode_prompts(["a cat"])["embeds"])
    assert torch.equal(unet_output(plain), unet_output(zero))
    # no LoRA layers are left behind: the weights are fused, the module tree is the model's own
    assert [n for n, _ in fused.denoiser.named_parameters()] == [n for n, _ in plain.denoiser.named_parameters()]
    info = fused.loras[0]
    assert (info.name, info.scale) == (str(path), 1.0)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_fused_weights_are_scale_times_b_a(sd15_lora):
    """W' = W + scale · (alpha/rank) · B A, in the UNet (diffusers' fuse) and the text encoder (ours)."""
    path, _, layers = sd15_lora
    plain, half = tiny(), tiny([(str(path), 0.5)])
    for part, module_of in [("unet", lambda b: b.denoiser), ("text_encoder", lambda b: b.text_encoders[0])]:
        name = next(k for k in layers[part] if "lora_A" in k).rsplit(".lora_A", 1)[0]
        down, up = layers[part][f"{name}.lora_A.weight"], layers[part][f"{name}.lora_B.weight"]
        before = module_of(plain).get_submodule(name).weight
        after = module_of(half).get_submodule(name).weight
        torch.testing.assert_close(after, before + 0.5 * up @ down)


@pytest.mark.slow
def test_kohya_format_fuses_like_the_diffusers_format(sd15_lora, tmp_path):
    """kohya's alpha scales by alpha/rank: alpha = rank/2 at scale 1 is the diffusers file at scale 0.5."""
    path, kohya, layers = sd15_lora
    half_alpha = save_kohya_lora(layers, tmp_path / "half.safetensors", alpha=RANK / 2)
    a, b, c = tiny([(str(path), 0.5)]), tiny([(str(kohya), 0.5)]), tiny([(str(half_alpha), 1.0)])
    for x, y, z in [(a.denoiser, b.denoiser, c.denoiser), (a.text_encoders[0], b.text_encoders[0], c.text_encoders[0])]:
        for (name, p), (_, q), (_, r) in zip(x.named_parameters(), y.named_parameters(), z.named_parameters(), strict=True):
            torch.testing.assert_close(q, p, msg=name)
            torch.testing.assert_close(r, p, msg=name)


@pytest.mark.slow
def test_an_sdxl_lora_on_an_sd15_model_is_a_one_line_error(tmp_path):
    path = save_diffusers_lora(lora_layers("sdxl", text_encoder=False), tmp_path, "sdxl")
    with pytest.raises(ModelLoadError, match="another architecture") as error:
        tiny([(str(path), 1.0)])
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_an_sdxl_lora_with_text_encoder_2_weights_on_sd15_names_the_part(tmp_path):
    path = save_diffusers_lora(lora_layers("sdxl"), tmp_path, "sdxl")
    with pytest.raises(ModelLoadError, match="text_encoder_2") as error:
        tiny([(str(path), 1.0)])
    assert str(path) in str(error.value)


@pytest.mark.slow
def test_an_sdxl_lora_on_tiny_sdxl(tmp_path, tiny_sdxl):
    path = save_diffusers_lora(lora_layers("sdxl"), tmp_path, "sdxl")
    backend = load_backend("tiny-sdxl", device=CPU, dtype=torch.float32, loras=[(str(path), 1.0)])
    assert not torch.equal(backend.encode_prompts(["x"])["pooled"], tiny_sdxl.encode_prompts(["x"])["pooled"])
    assert not torch.allclose(unet_output(backend), unet_output(tiny_sdxl), atol=1e-4)


def test_a_file_that_is_not_a_lora_is_a_one_line_error(tmp_path):
    path = tmp_path / "vae.safetensors"
    save_file(build_tiny_components("tiny")["vae"].state_dict(), str(path))
    with pytest.raises(ModelLoadError, match="is not a LoRA") as error:
        tiny([(str(path), 1.0)])
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="junk.safetensors"):
        tiny([(str(tmp_path / "junk.safetensors"), 1.0)])


def test_a_missing_lora_file_or_uncached_hub_lora_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        tiny([(str(tmp_path / "nope.safetensors"), 1.0)])
    with pytest.raises(ModelLoadError, match="someone/no-such-lora"):
        tiny([("someone/no-such-lora", 1.0)])


def test_loras_are_refused_on_a_pipelines_own_modules(tiny_sd15, sd15_lora):
    import dataclasses

    shared = dataclasses.replace(tiny_sd15, shared=True)
    with pytest.raises(ModelLoadError, match="load_lora_weights"):
        shared.arch.apply_loras(shared, [(str(sd15_lora[0]), 1.0)])
