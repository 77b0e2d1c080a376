"""--batch-size makes the same pictures as one image at a time, for every command and whatever the
jobs of a batch differ in: their content, its aspect ratio (and so the output size), their
reference set, their seed. A batch that groups jobs wrongly (by content only, say) applies one
job's references or size to another's and fails here."""

from __future__ import annotations

import pytest

from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import image, pixels, pngs, run

pytestmark = [pytest.mark.slow]

CASES = {
    "style-transfer": lambda root: ["style-transfer", root / "contents", "--style", root / "styles",
                                    "--size", "64", "--iterations", "3"],
    "appearance": lambda root: ["appearance", root / "contents", "--appearance", root / "styles",
                                "--size", "64", "--iterations", "3"],
    "style-transfer-two-styles-each": lambda root: ["style-transfer", root / "contents", "--style", root / "styles",
                                                    "--style", root / "extra.png", "--size", "64", "--iterations", "3"],
    "texture": lambda root: ["texture", "-r", root / "styles", "--num-images", "2", "--size", "64x64", "--iterations", "3"],
    "texture-sample": lambda root: ["texture", "-r", root / "styles", "--num-images", "2", "--mode", "sample",
                                    "--size", "64x64", "--steps", "2", "--ad-iterations", "1"],
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two contents of different aspect ratios, two styles of different aspect ratios, one more style."""
    root = tmp_path_factory.mktemp("batching")
    image(root / "contents" / "wide.png", seed=1, size=(72, 48))
    image(root / "contents" / "tall.png", seed=2, size=(48, 64))
    image(root / "styles" / "ink.png", seed=3, size=(64, 64))
    image(root / "styles" / "oil.png", seed=4, size=(64, 40))
    image(root / "extra.png", seed=5, size=(40, 40))
    return root


@pytest.mark.parametrize("case", list(CASES))
def test_a_batch_gives_what_one_image_at_a_time_gives(inputs, case, tmp_path):
    args = [str(a) for a in CASES[case](inputs)] + ["--model", "tiny", "--quiet"]
    assert run(*args, "-o", tmp_path / "alone", "--batch-size", "1").exit_code == 0
    result = run(*args, "-o", tmp_path / "batched", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    names = pngs(tmp_path / "alone")
    assert len(names) == 4 and pngs(tmp_path / "batched") == names
    for name in names:
        alone, batched = pixels(tmp_path / "alone" / name), pixels(tmp_path / "batched" / name)
        assert alone.shape == batched.shape, name
        assert abs(alone - batched).max() <= 1, f"{name}: batched differs from alone by {abs(alone - batched).max()} levels"
        assert read_metadata(tmp_path / "batched" / name)["inputs"] == read_metadata(tmp_path / "alone" / name)["inputs"]
