"""`-o` as PNG, JPEG or WebP, and `--format` for folders: each format carries the settings, so
`info`, `rerun` and `--resume` work for all of them (tiny model, 64×64, 2 iterations)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import one_line_error

FAST = ["--model", "tiny", "--size", "64x64", "--iterations", "2", "--quiet"]
PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp", ".png"])
def test_a_file_output_is_written_in_its_suffix_format_with_the_settings(cli, images, tmp_path, suffix):
    content, style = images
    out = tmp_path / f"result{suffix}"
    args = ["style-transfer", content, "--style", style, "-o", out, *FAST]
    assert cli(*args).exit_code == 0
    assert Image.open(out).format == PIL_FORMATS[suffix] and not out.is_dir()
    stored = json.loads(cli("info", out, "--json").stdout)
    assert stored["settings"]["iterations"] == 2 and stored["inputs"]["content"] == str(content)

    again = cli(*args, "--resume", "--report", tmp_path / "report.jsonl")  # same settings: nothing to make
    assert again.exit_code == 0
    assert json.loads((tmp_path / "report.jsonl").read_text())["status"] == "skipped"

    rerun = cli("rerun", out, "--quiet")  # made again beside it, in its own format
    assert rerun.exit_code == 0, rerun.output
    made = tmp_path / rerun.stdout.strip().rsplit("/", 1)[-1]
    assert made.suffix == (".jpg" if suffix == ".jpeg" else suffix) and Image.open(made).format == PIL_FORMATS[suffix]
    assert read_metadata(made)["seed"] == read_metadata(out)["seed"]


def test_format_picks_the_format_of_folder_outputs_and_resume_finds_them(cli, images, tmp_path):
    content, style = images
    args = ["style-transfer", content, "--style", style, "-o", tmp_path / "out", "--format", "webp", *FAST]
    made = cli(*args).stdout.strip()
    assert made.endswith(".webp") and Image.open(made).format == "WEBP"
    again = cli(*args, "--resume", "--report", tmp_path / "report.jsonl")
    assert again.exit_code == 0 and json.loads((tmp_path / "report.jsonl").read_text())["status"] == "skipped"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [made.rsplit("/", 1)[-1]]


@pytest.mark.slow
def test_quality_trades_size_for_fidelity(cli, images, tmp_path):
    content, style = images
    sizes = {}
    for quality in ("30", "100"):
        out = tmp_path / f"q{quality}.jpg"
        assert cli("style-transfer", content, "--style", style, "-o", out, "--quality", quality, *FAST).exit_code == 0
        sizes[quality] = out.stat().st_size
    assert sizes["30"] < sizes["100"]


@pytest.mark.parametrize("args, expected", [
    (["-o", "out.tif"], ".png, .jpg/.jpeg or .webp"),
    (["-o", "out.jpg", "--format", "png"], "--format png"),
    (["--quality", "0"], "--quality"),
    (["--format", "gif"], "--format"),
])
def test_unusable_output_choices_are_one_line_errors(cli, images, tmp_path, args, expected):
    content, style = images
    result = cli("style-transfer", content, "--style", style, *FAST, *[str(tmp_path / a) if a.startswith("out") else a for a in args])
    if args[0] in ("--quality", "--format") and args[1] in ("0", "gif"):  # Typer's own check: a usage error
        assert result.exit_code == 2 and expected in result.output
    else:
        assert expected in one_line_error(result)
    assert not any(p.suffix in (".tif", ".jpg", ".png") for p in tmp_path.iterdir() if p.name.startswith("out"))
