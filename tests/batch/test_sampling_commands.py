"""Batch machinery for the sampling commands (t2i, expand) and rerun of every image command's
outputs, on the tiny models at 64 px with 2 sampling steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import image, one_line_error, pixels, pngs, report_lines, run

T2I = ["--model", "tiny", "--size", "64x64", "--steps", "2", "--ad-iterations", "1", "--quiet"]
EXPAND = ["--model", "tiny", "--size", "96x64", "--window", "8", "--stride", "4", "--steps", "2", "--ad-iterations", "1", "--quiet"]


@pytest.fixture
def inputs(tmp_path):
    for number, name in enumerate(("ink", "oil")):
        image(tmp_path / "styles" / f"{name}.png", seed=number)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\na red house\n", encoding="utf-8")
    return tmp_path, prompts


@pytest.mark.slow
def test_t2i_prompts_times_a_style_folder_named_resumed_and_rerun_when_changed(inputs):
    root, prompts = inputs
    out, report = root / "out", root / "run.jsonl"
    args = ["t2i", "--prompts", prompts, "--style", root / "styles", "-o", out, "--name", "{style}/{prompt}_{image_index}",
            "--report", report, *T2I]
    result = run(*args)
    assert result.exit_code == 0, result.output
    expected = ["ink/a-cat_0.png", "ink/a-red-house_0.png", "oil/a-cat_0.png", "oil/a-red-house_0.png"]
    assert pngs(out) == expected
    meta = read_metadata(out / "oil" / "a-red-house_0.png")
    assert meta["inputs"]["prompt"] == "a red house" and meta["inputs"]["style"] == [str(root / "styles" / "oil.png")]
    assert [line["status"] for line in report_lines(report)] == ["done"] * 4

    assert run(*args, "--resume").exit_code == 0
    assert [line["status"] for line in report_lines(report)] == ["skipped"] * 4 and pngs(out) == expected

    image(root / "styles" / "oil.png", seed=7)  # one style changed: only its two jobs run again
    assert run(*args, "--resume").exit_code == 0
    assert [line["status"] for line in report_lines(report)] == ["skipped", "done", "skipped", "done"]  # prompt-major
    assert len(pngs(out)) == 6
    planned = run(*args, "--resume", "--dry-run", "--steps", "3")  # a changed setting: every job would run again
    assert planned.exit_code == 0 and "skip" not in planned.stdout and len(planned.stdout.splitlines()) == 4

    zipped = run("t2i", "--prompts", prompts, "--style", root / "styles", "--pair", "zip", "-o", root / "zip", *T2I)
    assert zipped.exit_code == 0, zipped.output
    assert pngs(root / "zip") == ["001_a-cat_ink.png", "002_a-red-house_oil.png"]


def test_t2i_dry_run_lists_jobs_without_loading_a_model(inputs, monkeypatch):
    root, prompts = inputs
    import adcli.batch.runner as batch

    monkeypatch.setattr(batch, "open_model", lambda *a, **k: pytest.fail("a dry run loaded the model"))
    result = run("t2i", "--prompts", prompts, "--style", root / "styles", "--num-images", "2", "-o", root / "out", "--dry-run", *T2I)
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert len(lines) == 8 and {Path(line[1]).name for line in lines} >= {"001_a-cat_ink_0.png", "002_a-red-house_oil_1.png"}
    assert not (root / "out").exists()


@pytest.mark.slow
def test_manifests_for_t2i_and_expand(inputs):
    root, _ = inputs
    t2i = root / "t2i.csv"
    t2i.write_text("prompt,style,name,seed,steps\na cat,styles/ink.png,cat,3,2\na dog,styles/ink.png;styles/oil.png,dog,4,3\n")
    result = run("t2i", "--manifest", t2i, "-o", root / "t2i", *T2I)
    assert result.exit_code == 0, result.output
    assert pngs(root / "t2i") == ["cat.png", "dog.png"]
    dog = read_metadata(root / "t2i" / "dog.png")
    assert dog["settings"]["steps"] == 3 and dog["settings"]["seed"] == 4 and len(dog["inputs"]["style"]) == 2

    expand = root / "expand.jsonl"
    expand.write_text(json.dumps({"reference": "styles/oil.png", "image_index": 1, "size": "64x64"}) + "\n")
    result = run("expand", "--manifest", expand, "-o", root / "expand", *EXPAND)
    assert result.exit_code == 0, result.output
    [written] = pngs(root / "expand")
    assert written == "oil_64x64_1.png" and read_metadata(root / "expand" / written)["inputs"]["image_index"] == 1

    assert "not both" in one_line_error(run("expand", "--manifest", expand, "-r", root / "styles", *EXPAND))
    bad = root / "bad.csv"
    bad.write_text("style\nstyles/ink.png\n")
    assert "no prompt" in one_line_error(run("t2i", "--manifest", bad, "-o", root / "bad", *T2I))


def test_expand_takes_a_reference_folder(inputs):
    root, _ = inputs
    result = run("expand", "-r", root / "styles", "--num-images", "2", "-o", root / "out", "--name", "{reference}-{image_index}", *EXPAND)
    assert result.exit_code == 0, result.output
    assert pngs(root / "out") == ["ink-0.png", "ink-1.png", "oil-0.png", "oil-1.png"]


@pytest.mark.parametrize("command", ["t2i", "expand"])
def test_rerun_reproduces_t2i_and_expand_outputs(inputs, command):
    root, _ = inputs
    style = root / "styles" / "ink.png"
    layout = image(root / "layout.png", seed=5)
    original = root / "first.png"
    if command == "t2i":
        args = ["t2i", "a cat", "--style", style, "--layout", layout, "--strength", "0.5", *T2I]
    else:
        args = ["expand", "-r", style, "--tile", "x", *EXPAND]
    assert run(*args, "--seed", "11", "-o", original).exit_code == 0
    again = run("rerun", original, "-o", root / "again.png")
    assert again.exit_code == 0, again.output
    assert (pixels(root / "again.png") == pixels(original)).all()
    assert read_metadata(root / "again.png")["seed"] == read_metadata(original)["seed"]


def test_rerun_reproduces_a_masked_texture(tmp_path):
    masks = Path(__file__).resolve().parents[2] / "samples" / "masks"
    original = tmp_path / "masked.png"
    args = ["texture", "-r", masks / "source_texture.png", "--source-mask", masks / "source_labels.png",
            "--target-mask", masks / "target_labels.png", "--model", "tiny", "--size", "64x64", "--iterations", "2", "-q"]
    assert run(*args, "-o", original).exit_code == 0
    again = run("rerun", original, "-o", tmp_path / "again.png")
    assert again.exit_code == 0, again.output
    assert (pixels(tmp_path / "again.png") == pixels(original)).all()
    assert read_metadata(tmp_path / "again.png")["inputs"]["target_mask"] == str(masks / "target_labels.png")
