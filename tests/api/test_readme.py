"""The README's Python API section runs as written, on the tiny model, and does what it says."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.loras import lora_layers, save_kohya_lora

ROOT = Path(__file__).resolve().parents[2]


def api_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API\n"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def settings_of(image: Image.Image) -> dict:
    return json.loads(image.info["adcli"])


def check_first_steps(names: dict, printed: list[str], folder: Path) -> None:
    assert (folder / "chelsea_hubble.png").is_file()
    assert names["image"].size == (128, 88) and printed[-1] == "(128, 88)"
    stored = settings_of(Image.open(folder / "chelsea_hubble.png"))
    assert stored["task"] == "style-transfer" and stored["settings"]["iterations"] == 20


def check_every_command(names: dict, printed: list[str], folder: Path) -> None:
    assert names["look"].size[0] == 64 and len(names["textures"]) == 2 and names["picture"].size == (64, 64)
    assert names["panorama"].size == (256, 128)
    assert (Path(names["vae_folder"]) / "config.json").is_file()
    assert printed[-1].startswith("10/200")  # the callback stopped the run at step 10
    assert settings_of(names["early"])["stopped_at_step"] == 10


def check_from_pipe(names: dict, printed: list[str], folder: Path) -> None:
    """The borrowed pipeline computes what the same model loaded by adcli computes."""
    import adcli

    own = adcli.style_transfer(adcli.load_model("tiny", device="cpu"), "samples/content/chelsea.jpg",
                               "samples/style/hubble.jpg", iterations=10, size="64")
    assert names["image"].size == own.size == (64, 40)  # chelsea's aspect ratio, longer side 64
    assert np.array_equal(np.asarray(names["image"]), np.asarray(own))
    assert settings_of(names["image"])["settings"]["iterations"] == 10


def check_lora(names: dict, printed: list[str], folder: Path) -> None:
    """The LoRA is fused at its scale (the texture differs from the plain model's) and recorded."""
    import adcli

    texture = names["texture"]
    plain = adcli.texture(adcli.load_model("tiny", device="cpu"), "samples/style/brick.jpg", iterations=10, size="64")[0]
    assert texture.size == plain.size and not np.array_equal(np.asarray(texture), np.asarray(plain))
    [lora] = settings_of(texture)["loras"]
    assert lora["name"] == "ink-lora.safetensors" and lora["scale"] == 0.8
    assert lora["sha256"].removeprefix("sha256:") == hashlib.sha256((folder / "ink-lora.safetensors").read_bytes()).hexdigest()


def check_start_latents(names: dict, printed: list[str], folder: Path) -> None:
    """FLUX's packed latents start the image (its size, and their digest recorded instead of the seed's noise)."""
    assert names["latents"].shape == (1, 16, 64) and names["image"].size == (64, 64)
    assert settings_of(names["image"])["model_arch"] == "flux" and "start_latents_sha256" in settings_of(names["image"])


CHECKS = {"adcli.save(": check_first_steps, "adcli.finetune_vae(": check_every_command,
          "adcli.from_pipe(": check_from_pipe, "loras=": check_lora, "latents=latents": check_start_latents}


def check_for(block: str):
    [check] = [check for needle, check in CHECKS.items() if needle in block]
    return check


def test_the_section_has_the_examples_the_issue_asks_for():
    blocks = api_blocks()
    assert len(blocks) >= 4
    joined = "\n".join(blocks)
    for needle in ("adcli.load_model(", "adcli.from_pipe(", "loras=", "callback=", "adcli.save(", "adcli.t2i(",
                   "adcli.texture(", "adcli.expand(", "adcli.appearance(", "adcli.finetune_vae("):
        assert needle in joined, needle
    for block in blocks:
        check_for(block)  # each block has exactly one check of what it claims


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(api_blocks())))
def test_readme_python_block_runs_and_does_what_it_says(index, tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    save_kohya_lora(lora_layers("sd15"), tmp_path / "ink-lora.safetensors")
    monkeypatch.chdir(tmp_path)
    block = api_blocks()[index]
    names = {"__name__": "readme"}
    exec(compile(block, f"README.md python block {index + 1}", "exec"), names)
    check_for(block)(names, capsys.readouterr().out.splitlines(), tmp_path)


def small_gpu_commands() -> list[tuple[list[str], str]]:
    """The ``adcli`` lines of the README's "Small GPUs" section: (arguments, trailing comment)."""
    import shlex

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Small GPUs"):]
    section = section[: section.index("\n### ", 1)]
    lines = [line for block in re.findall(r"```sh\n(.*?)```", section, re.S) for line in block.splitlines()]
    return [(shlex.split(line, comments=True)[1:], line.partition("#")[2].strip())
            for line in lines if line.startswith("adcli ")]


def on_tiny_models(args: list[str], gguf_file: Path, config: Path) -> list[str]:
    """The same command on the tiny models: the GGUF file and its config written from tiny-flux, --arch's
    tiny model, a small size and few steps (later options override earlier ones)."""
    swapped = {"flux1-dev-Q8_0.gguf": str(gguf_file), "black-forest-labs/FLUX.1-dev": str(config)}
    args = [swapped.get(arg, arg) for arg in args]
    if "--arch" in args:
        args += ["--model", "tiny-" + args[args.index("--arch") + 1]]
    fast = {"t2i": ["--size", "64x64", "--steps", "2", "--ad-iterations", "1"],
            "style-transfer": ["--size", "64", "--iterations", "2"]}
    return args + fast.get(args[0], []) + (["--quiet", "--overwrite"] if args[0] in fast else [])


@pytest.mark.slow
def test_the_small_gpus_section_runs_on_the_tiny_models(tmp_path, monkeypatch):
    """Every command of "Small GPUs" runs as written with the tiny models in place of the real ones (on
    this CPU: nf4, marked CUDA only, is the one-line error that says what to use instead)."""
    import gguf
    import torch

    from adcli.engine.archs.tiny_transformers import tiny_flux_pipeline
    from tests.support.batch_helpers import one_line_error, run
    from tests.support.quantized_models import write_transformer_gguf

    pipe = tiny_flux_pipeline()
    pipe.save_pretrained(tmp_path / "flux-config")
    write_transformer_gguf(pipe.transformer, "flux", tmp_path / "flux.gguf", gguf.GGMLQuantizationType.Q8_0)
    for name, sample in {"ink.png": "style/hubble.jpg", "painting.png": "style/brick.jpg", "photo.jpg": "content/chelsea.jpg"}.items():
        shutil.copy(ROOT / "samples" / sample, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    commands = small_gpu_commands()
    assert {"--quantize", "--model-config", "--low-vram"} <= {arg for args, _ in commands for arg in args}
    for args, comment in commands:
        result = run(*on_tiny_models(args, tmp_path / "flux.gguf", tmp_path / "flux-config"))
        if "CUDA only" in comment and not torch.cuda.is_available():
            assert "--quantize nf4 needs a CUDA GPU" in one_line_error(result)
        else:
            assert result.exit_code == 0, (args, result.output)
        if args[0] == "info":  # it shows what the comment says
            assert re.search(r"quantize\s+int8", result.stdout)  # the last lighthouse.png was quantized to int8
