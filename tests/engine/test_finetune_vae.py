"""VAE decoder fine-tuning: it lowers reconstruction error, touches only the decoder, and the saved
folder loads back with --vae."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from adcli.cli.app import app
from adcli.engine.images import load_image_tensor
from adcli.engine.models import load_vae
from adcli.engine.tiny import tiny_vae
from adcli.engine.vae_finetune import finetune_decoder, random_crops, reconstruction_l1
from adcli.outputs.files import read_metadata

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
BRICK = SAMPLES / "style" / "brick.jpg"
GRAVEL = SAMPLES / "style" / "gravel.jpg"
FAST = ["--model", "tiny", "--steps", "12", "--crop-size", "64", "--device", "cpu"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, expected: str) -> bool:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return len(errors) == 1 and expected in errors[0] and "Traceback" not in result.stderr


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_decoder_fine_tuning_lowers_l1_and_leaves_the_encoder_alone():
    torch.manual_seed(0)
    vae = tiny_vae().eval().requires_grad_(False)
    images = [load_image_tensor(BRICK, (96, 64)), load_image_tensor(GRAVEL, (64, 64))]
    encoder, decoder = weights(vae.encoder), weights(vae.decoder)
    steps_seen = []
    result = finetune_decoder(
        vae, images, steps=15, lr=1e-3, crop_size=48, batch_size=2, seed=0,
        callback=lambda info: steps_seen.append((info["step"], info["total"], info["loss"])),
    )
    assert result.l1_after < result.l1_before
    assert result.l1_after == pytest.approx(reconstruction_l1(vae, images))
    assert result.crop_size == 48
    assert [s for s, _, _ in steps_seen] == list(range(1, 16)) and steps_seen[-1][2] is not None
    assert all(torch.equal(v, vae.encoder.state_dict()[k]) for k, v in encoder.items())
    assert any(not torch.equal(v, vae.decoder.state_dict()[k]) for k, v in decoder.items())
    assert not any(p.requires_grad for p in vae.parameters())  # frozen again, as it came


def test_random_crops_are_seeded_flipped_and_fit_the_smallest_image():
    images = [torch.arange(3 * 16 * 24).float().reshape(1, 3, 16, 24), torch.zeros(1, 3, 40, 40)]
    first = random_crops(images, 16, 8, torch.Generator().manual_seed(3))
    again = random_crops(images, 16, 8, torch.Generator().manual_seed(3))
    other = random_crops(images, 16, 8, torch.Generator().manual_seed(4))
    assert first.shape == (8, 3, 16, 16)
    assert torch.equal(first, again) and not torch.equal(first, other)
    crops = random_crops(images[:1], 16, 32, torch.Generator().manual_seed(5))
    rows_increase = (crops[:, 0, 0, 1] > crops[:, 0, 0, 0])
    assert rows_increase.any() and (~rows_increase).any()  # some crops mirrored left-right, some not


@pytest.mark.slow
def test_finetune_vae_cli_saves_a_vae_that_texture_loads_with_vae(tmp_path):
    out = tmp_path / "brick-vae"
    result = run("finetune-vae", BRICK, "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert "before" in result.stderr and "after" in result.stderr
    assert {p.name for p in out.iterdir()} == {"config.json", "diffusion_pytorch_model.safetensors", "adcli-finetune.json"}
    record = json.loads((out / "adcli-finetune.json").read_text())
    assert record["reconstruction_l1_after"] < record["reconstruction_l1_before"]
    assert record["settings"]["steps"] == 12 and record["inputs"]["reference"] == [str(BRICK)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left

    loaded = load_vae(str(out))
    original = tiny_vae()
    assert any(not torch.equal(v, loaded.decoder.state_dict()[k]) for k, v in original.decoder.state_dict().items())

    picture = tmp_path / "texture.png"
    texture = run("texture", "-r", BRICK, "--model", "tiny", "--vae", out, "--size", "64x64", "-n", "2", "-q", "-o", picture)
    assert texture.exit_code == 0, texture.output
    assert read_metadata(picture)["settings"]["vae"] == str(out)


def test_finetune_vae_refuses_to_replace_a_folder_unless_told(tmp_path):
    out = tmp_path / "vae"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused = run("finetune-vae", BRICK, "-o", out, *FAST)
    assert refused.exit_code == 2
    assert one_line_error(refused, "already exists")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    replaced = run("finetune-vae", BRICK, "-o", out, *FAST, "--steps", "2", "--overwrite", "-q")
    assert replaced.exit_code == 0, replaced.output
    assert (out / "config.json").is_file() and not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--steps", "0"], "--steps must be between 1 and 1000"),
        (["--crop-size", "30"], "crop_size must be a multiple of 8"),
        (["--vae", "/nowhere/vae"], "does not exist"),
    ],
)
def test_finetune_vae_mistakes_are_one_line_errors(tmp_path, args, expected):
    out = tmp_path / "vae"
    result = run("finetune-vae", BRICK, "-o", out, *FAST, *args)
    assert result.exit_code == 2, result.output
    assert one_line_error(result, expected)
    assert not out.exists()


def test_finetune_vae_needs_existing_images(tmp_path):
    result = run("finetune-vae", tmp_path / "missing.png", "-o", tmp_path / "vae", *FAST)
    assert result.exit_code == 2 and one_line_error(result, "does not exist")
