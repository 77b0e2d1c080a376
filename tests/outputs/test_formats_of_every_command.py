"""Every command's output carries the same metadata in every format (PNG tEXt, JPEG and WebP
EXIF): settings, inputs, input digests, seed, model and size; --resume finds it in each format.
A non-ASCII prompt survives the ASCII-only EXIF comment."""

from __future__ import annotations

from pathlib import Path

import pytest

from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import run
from tests.support.commands import COMMANDS, write_inputs

pytestmark = [pytest.mark.slow]

FORMATS = ("png", "jpg", "webp")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("formats"))


def made(folder: Path, *argv: str) -> Path:
    result = run(*argv)
    assert result.exit_code == 0, result.output
    [path] = result.stdout.split()
    return Path(path)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_format_stores_what_png_stores_and_resume_finds_it(inputs, name, tmp_path):
    command = COMMANDS[name]
    stored = {}
    for image_format in FORMATS:
        folder = tmp_path / image_format
        folder.mkdir()
        argv = command.argv(inputs, "--format", image_format)
        argv[argv.index("-o") + 1] = str(folder)
        path = made(folder, *argv)
        assert path.suffix == f".{image_format}"
        stored[image_format] = read_metadata(path)
        resumed = run(*argv, "--resume", "--dry-run")
        assert resumed.exit_code == 0 and "skip (done)" in resumed.stdout, resumed.output
    png = stored["png"]
    assert png["task"] == command.task and png["input_digests"] and png["size_used"] and png["model_arch"] == "sd15"
    for image_format in FORMATS[1:]:
        assert stored[image_format] == png, image_format


@pytest.mark.parametrize("image_format", ["jpg", "webp"])
def test_a_non_ascii_prompt_survives_exif(inputs, image_format, tmp_path):
    prompt = "чай у моря, 富士山"
    out = tmp_path / f"tea.{image_format}"
    made(tmp_path, "t2i", prompt, "--style", str(inputs / "s1.png"), "--model", "tiny", "--size", "32x32", "--steps", "1",
         "--ad-iterations", "0", "--negative-prompt", "размыто", "-o", str(out), "--quiet")
    stored = read_metadata(out)
    assert stored["inputs"]["prompt"] == prompt and stored["settings"]["negative_prompt"] == "размыто"
