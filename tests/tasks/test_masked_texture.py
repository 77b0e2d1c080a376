"""`adcli texture --source-mask --target-mask` as a user runs it, on the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from adcli.cli.app import app
from adcli.engine.label_maps import LabelMaps
from adcli.engine.masks import MaskedAttention
from adcli.presets import load_settings
from adcli.tasks import masked_texture
from adcli.tasks.model import open_model
from adcli.outputs.files import read_metadata

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "masks"
REFERENCE = SAMPLES / "source_texture.png"
SOURCE = SAMPLES / "source_labels.png"
TARGET = SAMPLES / "target_labels.png"  # 384×256, red with a blue disc
FAST = ["--model", "tiny", "--size", "64x64", "--iterations", "3", "--quiet"]


def invoke(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_masked_texture_takes_the_target_maps_shape_and_records_its_inputs(tmp_path):
    result = invoke("texture", "-r", REFERENCE, "--source-mask", SOURCE, "--target-mask", TARGET, *FAST, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    written = tmp_path / "source_texture_target_labels.png"
    assert result.stdout.strip() == str(written)
    with Image.open(written) as image:
        assert image.size == (64, 40)  # 3:2 like the target map, longer side of --size
    meta = read_metadata(written)
    assert meta["inputs"]["source_mask"] == str(SOURCE)
    assert meta["inputs"]["target_mask"] == str(TARGET)
    assert meta["inputs"]["labels"] == ["#0000ff", "#ff0000"]
    assert meta["inputs"]["output_size"] == "64x40" and meta["inputs"]["reference_size"] == "64x64"
    assert meta["settings"]["mask_content_weight"] == 0.15


def test_init_image_is_the_start_and_the_content_reference(monkeypatch):
    """The job hands distill_by_optimization the init latent as start and content (λ 0.15) and the label mask."""
    captured = {}

    def fake_distill(backend, init_latents, guide, **kwargs):
        captured.update(init=init_latents, guide=guide, **kwargs)
        return init_latents

    monkeypatch.setattr(masked_texture, "distill_by_optimization", fake_distill)
    resolved = load_settings("texture", overrides={"model": "tiny", "size": "96x96", "iterations": 2})
    inputs = {"reference": [REFERENCE], "source_mask": SOURCE, "target_mask": TARGET}
    model = open_model({"model": "tiny", "device": "cpu"})
    masked_texture.run_masked_texture(model, [inputs], resolved.settings, [123])

    guide = captured["guide"]
    assert guide.content is captured["init"]
    assert guide.content_weight == pytest.approx(0.15)
    assert isinstance(guide.mask_fn, MaskedAttention)
    assert tuple(captured["init"].shape) == (1, 4, 8, 12)  # 96×64 px: the target map's shape
    assert tuple(guide.reference.shape) == (1, 4, 12, 12)  # the reference keeps its own square shape
    mask = guide.mask_fn((8, 12), (12, 12))
    assert mask.shape == (96, 144) and mask.any(dim=1).all()


def write_map(path: Path, colours: dict[tuple[int, int, int], tuple[slice, slice]], size=(32, 32)) -> Path:
    pixels = np.full((size[1], size[0], 3), 255, dtype=np.uint8)
    for colour, (rows, cols) in colours.items():
        pixels[rows, cols] = colour
    Image.fromarray(pixels, "RGB").save(path)
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing-colour", "#00ff00"),
        ("only-source", "--source-mask needs --target-mask"),
        ("two-references", "takes one --reference"),
        ("aspect", "must label that image"),
    ],
)
def test_mask_mistakes_are_one_line_errors_and_write_nothing(tmp_path, case, expected):
    out = tmp_path / "out"
    args = ["texture", "-r", REFERENCE, "--source-mask", SOURCE, *FAST, "-o", out]
    if case == "missing-colour":
        green = write_map(tmp_path / "green.png", {(0, 255, 0): (slice(0, 8), slice(0, 8))})
        args += ["--target-mask", green]
    elif case == "two-references":
        args += ["--target-mask", TARGET, "-r", REFERENCE]
    elif case == "aspect":
        wide = write_map(tmp_path / "wide.png", {(255, 0, 0): (slice(None), slice(None))}, size=(64, 16))
        args = ["texture", "-r", REFERENCE, "--source-mask", wide, "--target-mask", wide, *FAST, "-o", out]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_label_maps_are_read_once_for_all_images_of_a_run(tmp_path, monkeypatch):
    """Three images, each built into a job and then made: the maps are read and checked once."""
    import shutil

    for path in (REFERENCE, SOURCE, TARGET):
        shutil.copy(path, tmp_path / path.name)  # files no earlier test has prepared
    reads = []
    real = LabelMaps.read
    monkeypatch.setattr(LabelMaps, "read", staticmethod(lambda *a: reads.append(a) or real(*a)))
    result = invoke("texture", "-r", tmp_path / REFERENCE.name, "--source-mask", tmp_path / SOURCE.name,
                    "--target-mask", tmp_path / TARGET.name, "--num-images", "3", *FAST, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
    assert len(reads) == 1
    (tmp_path / TARGET.name).touch()  # an edited map is read again
    (tmp_path / TARGET.name).write_bytes(TARGET.read_bytes())
    assert invoke("texture", "-r", tmp_path / REFERENCE.name, "--source-mask", tmp_path / SOURCE.name,
                  "--target-mask", tmp_path / TARGET.name, *FAST, "-o", tmp_path / "again").exit_code == 0
    assert len(reads) == 2
