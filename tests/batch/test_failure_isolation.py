"""One image's failure is its own: whichever image of a batch fails (the first included), alone
or after its batch failed and was retried one image at a time, the others are made and written,
the report says which failed, and the run exits 1."""

from __future__ import annotations

import pytest

import adcli.batch.runner as runner
from adcli.errors import NumericalError
from tests.support.batch_helpers import image, pngs, report_lines, run

TINY = ["--model", "tiny", "--size", "64x64", "--quiet"]


@pytest.fixture
def failing(monkeypatch):
    """Make the images of ``doomed`` jobs fail (and any batch holding one), as a diverging run would."""
    doomed: list[str] = []
    calls: list[int] = []
    real = runner.make_images

    def make_images(model, task, items, settings, seeds, callback=None):
        calls.append(len(items))
        if any(str(item.get("content") or item.get("prompt") or item.get("image_index")) in doomed for item in items):
            raise NumericalError("the loss became nan at iteration 1")
        return real(model, task, items, settings, seeds, callback)

    monkeypatch.setattr(runner, "make_images", make_images)
    return doomed, calls


@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_batch_retried_one_by_one_keeps_the_others_whichever_fails(tmp_path, failing, position):
    doomed, calls = failing
    contents = [image(tmp_path / "in" / f"c{i}.png", seed=i) for i in range(3)]
    doomed.append(str(contents[position]))
    report = tmp_path / "run.jsonl"
    result = run("style-transfer", *contents, "--style", image(tmp_path / "s.png", seed=9), "-o", tmp_path / "out",
                 "--batch-size", "3", "--iterations", "2", "--report", report, *TINY)
    assert result.exit_code == 1
    assert calls == [3, 1, 1, 1]  # the batch, then each image alone
    statuses = ["done"] * 3
    statuses[position] = "failed"
    assert [line["status"] for line in report_lines(report)] == statuses
    assert pngs(tmp_path / "out") == [f"c{i}_s.png" for i in range(3) if i != position]
    assert "the loss became nan" in report_lines(report)[position]["error"]


def test_the_first_texture_of_a_batch_failing_leaves_the_others(tmp_path, failing):
    doomed, calls = failing
    doomed.append("0")  # image_index 0
    report = tmp_path / "run.jsonl"
    result = run("texture", "-r", image(tmp_path / "r.png"), "--num-images", "3", "--batch-size", "3", "--iterations", "2",
                 "-o", tmp_path / "out", "--report", report, *TINY)
    assert result.exit_code == 1
    assert [line["status"] for line in report_lines(report)] == ["failed", "done", "done"]
    assert pngs(tmp_path / "out") == ["r_texture_1.png", "r_texture_2.png"]


def test_the_first_prompt_failing_leaves_the_other_prompts(tmp_path, failing):
    """Sampling jobs run one at a time: no batch, each failure its own."""
    doomed, calls = failing
    doomed.append("a cat")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\na dog\na house\n", encoding="utf-8")
    report = tmp_path / "run.jsonl"
    result = run("t2i", "--prompts", prompts, "--style", image(tmp_path / "s.png"), "--steps", "2", "--ad-iterations", "1",
                 "-o", tmp_path / "out", "--report", report, *TINY)
    assert result.exit_code == 1 and calls == [1, 1, 1]
    assert [line["status"] for line in report_lines(report)] == ["failed", "done", "done"]
    assert pngs(tmp_path / "out") == ["002_a-dog_s.png", "003_a-house_s.png"]
