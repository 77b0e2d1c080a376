"""FLUX.1 and SD3.5 models from every source adcli takes, through the CLI and the API: a diffusers
folder, one transformer file (original layout, or GGUF) with --model-config, a separate VAE, LoRAs,
a user's own FluxPipeline / StableDiffusion3Pipeline (left as it was), and the hub ids --arch picks."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

import adcli
from adcli.engine.archs.tiny_transformers import tiny_flux_pipeline, tiny_sd3_pipeline
from adcli.engine.probe import probe_model
from adcli.errors import ModelLoadError
from tests.support.batch_helpers import one_line_error, pixels, run
from tests.support.gguf_files import write_gguf
from tests.support.transformer_checkpoints import flux_to_original, save_original
from tests.support.transformer_loras import save_transformer_lora

BRICK = "samples/style/brick.jpg"
PIPELINES = {"flux": (tiny_flux_pipeline, "tiny-flux"), "sd3": (tiny_sd3_pipeline, "tiny-sd3")}


def texture(model, **settings):
    return np.asarray(adcli.texture(model, BRICK, size="64x64", iterations=2, seed=3, **settings)[0]).astype(int)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each tiny pipeline saved as a diffusers folder, and its transformer alone in the original layout."""
    root = tmp_path_factory.mktemp("transformer-models")
    for arch, (build, _) in PIPELINES.items():
        pipe = build()
        pipe.save_pretrained(root / arch)
        save_original(pipe.transformer, root / f"{arch}-original.safetensors")
    return root


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_a_diffusers_folder_is_probed_without_loading_and_runs_as_the_tiny_model(folders, arch, tmp_path):
    tiny = PIPELINES[arch][1]
    assert probe_model(str(folders / arch)) == probe_model(tiny)
    out = tmp_path / "folder.png"
    assert run("texture", "-r", BRICK, "--model", folders / arch, "--size", "64x64", "--iterations", "2", "--seed", "3",
               "-o", out, "--quiet").exit_code == 0
    assert np.array_equal(pixels(out), texture(adcli.load_model(tiny, device="cpu")))


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_one_original_layout_transformer_file_with_a_model_config(folders, arch, tmp_path):
    """BFL's / Stability's layout, read with the folder's text encoders, VAE and scheduler: the same model."""
    single = folders / f"{arch}-original.safetensors"
    assert probe_model(str(single)).arch == arch
    out = tmp_path / "single.png"
    made = run("texture", "-r", BRICK, "--model", single, "--model-config", folders / arch, "--size", "64x64",
               "--iterations", "2", "--seed", "3", "-o", out, "--quiet")
    assert made.exit_code == 0, made.output
    assert np.array_equal(pixels(out), texture(adcli.load_model(str(folders / arch), device="cpu")))
    line = one_line_error(run("texture", "-r", BRICK, "--model", single, "-o", tmp_path / "x.png", "--quiet"))
    assert "--model-config" in line  # a transformer alone needs its configs


def test_a_gguf_transformer_file_runs_through_the_cli(folders, tmp_path):
    path = tmp_path / "flux-Q8_0.gguf"
    write_gguf(flux_to_original(tiny_flux_pipeline().transformer.state_dict()), path, "flux", gguf.GGMLQuantizationType.Q8_0)
    assert probe_model(str(path)) == ("flux", 57, None)
    out = tmp_path / "gguf.png"
    made = run("texture", "-r", BRICK, "--model", path, "--model-config", folders / "flux", "--size", "64x64",
               "--iterations", "2", "--seed", "3", "-o", out, "--quiet")
    assert made.exit_code == 0, made.output
    exact = texture(adcli.load_model(str(folders / "flux"), device="cpu"))
    assert np.abs(pixels(out) - exact).mean() < 2  # 8-bit weights: close to the full-precision picture


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_a_separate_vae_needs_16_latent_channels(folders, arch, tmp_path):
    adcli.load_model("tiny", device="cpu").backend.vae.save_pretrained(tmp_path / "sd-vae")
    with pytest.raises(ModelLoadError, match="has 4 latent channels"):
        adcli.load_model(PIPELINES[arch][1], device="cpu", vae=str(tmp_path / "sd-vae"))
    own = adcli.load_model(str(folders / arch), device="cpu", vae=str(folders / arch / "vae"))
    assert np.array_equal(texture(own), texture(adcli.load_model(str(folders / arch), device="cpu")))


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_a_lora_is_fused_and_recorded(arch, tmp_path):
    lora = save_transformer_lora(arch, tmp_path, text_encoder=True)
    tiny = PIPELINES[arch][1]
    plain, fused = adcli.load_model(tiny, device="cpu"), adcli.load_model(tiny, device="cpu", loras=[(str(lora), 0.8)])
    [image] = adcli.texture(fused, BRICK, size="64x64", iterations=2, seed=3)
    assert not np.array_equal(np.asarray(image).astype(int), texture(plain))
    assert '"scale": 0.8' in image.info["adcli"] and "sha256" in image.info["adcli"]
    other = save_transformer_lora("sd3" if arch == "flux" else "flux", tmp_path / "other")
    with pytest.raises(ModelLoadError, match="does not fit this"):
        adcli.load_model(tiny, device="cpu", loras=[str(other)])


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_from_pipe_runs_on_the_users_pipeline_and_leaves_it_as_it_was(arch):
    build, tiny = PIPELINES[arch]
    pipe = build()
    processors = dict(pipe.transformer.attn_processors)
    weights = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    model = adcli.from_pipe(pipe)
    assert model.arch == arch
    tiled = adcli.texture(model, BRICK, size="64x64", iterations=2, seed=3, tile="xy")[0]
    assert np.array_equal(texture(model), texture(adcli.load_model(tiny, device="cpu")))
    assert tiled.size == (64, 64)
    assert pipe.transformer.attn_processors == processors
    assert all(torch.equal(v, weights[k]) for k, v in pipe.transformer.state_dict().items())
    assert not pipe.transformer.is_gradient_checkpointing and not pipe.transformer._forward_pre_hooks


def test_sd3_without_its_t5_runs(tmp_path):
    """A StableDiffusion3Pipeline loaded without T5 (text_encoder_3=None): its T5 tokens are zeros."""
    pipe = tiny_sd3_pipeline()
    pipe.text_encoder_3, pipe.tokenizer_3 = None, None
    [image] = adcli.t2i(adcli.from_pipe(pipe), "a cat", BRICK, size="64x64", steps=2, ad_iterations=1)
    assert image.size == (64, 64)


@pytest.mark.parametrize("arch, hub_id", [("flux", "black-forest-labs/FLUX.1-dev"), ("sd3", "stabilityai/stable-diffusion-3.5-medium")])
def test_arch_picks_its_hub_model_and_offline_says_which_is_missing(arch, hub_id, tmp_path):
    line = one_line_error(run("t2i", "a cat", "--style", BRICK, "--arch", arch, "-o", tmp_path / "o.png", "--quiet"))
    assert hub_id in line and "Traceback" not in line


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-flux", "tiny-sd3"])
def test_low_vram_checkpoints_each_block_and_keeps_the_picture(name):
    """Gradient checkpointing per transformer block, text encoders and VAE off the GPU but while they
    work, a tiled VAE: the same picture as without (at 64² no VAE tile is needed)."""
    low = adcli.load_model(name, device="cpu", low_vram=True)
    backend = low.backend
    assert backend.denoiser.is_gradient_checkpointing and backend.encoders_offloaded and backend.vae_offloaded
    assert backend.vae.use_tiling
    plain = adcli.load_model(name, device="cpu")
    settings = dict(size="64x64", steps=2, ad_iterations=2, seed=4)
    [made], [expected] = adcli.t2i(low, "a cat", BRICK, **settings), adcli.t2i(plain, "a cat", BRICK, **settings)
    assert np.array_equal(np.asarray(made), np.asarray(expected))
