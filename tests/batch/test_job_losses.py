"""A batched image reports its own loss, not its batch's: in the progress bar, the JSONL and HTML
reports, and the API callback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adcli.batch.runner import LOSS_EVERY, _Progress
from tests.support.batch_helpers import image, report_lines, run


class Shown:
    """A reporter that keeps what the progress bar would show."""

    def __init__(self) -> None:
        self.losses: list[Any] = []

    def step(self, info: dict[str, Any]) -> None:
        self.losses.append(info.get("loss"))


def test_each_job_of_a_batch_keeps_its_own_loss_history():
    shown = Shown()
    progress = _Progress(shown, None, count=2)
    for step in range(1, 2 * LOSS_EVERY + 1):
        own = [1.0 / step, 2.0 / step]
        progress({"step": step, "total": 2 * LOSS_EVERY, "loss": sum(own) / 2, "losses": own})
    assert progress.histories == [
        [[LOSS_EVERY, round(1.0 / LOSS_EVERY, 6)], [2 * LOSS_EVERY, round(1.0 / (2 * LOSS_EVERY), 6)]],
        [[LOSS_EVERY, round(2.0 / LOSS_EVERY, 6)], [2 * LOSS_EVERY, round(2.0 / (2 * LOSS_EVERY), 6)]],
    ]
    assert shown.losses[0] == 1.0  # the bar, named after the batch's first job, shows that job's loss


def test_without_per_item_losses_the_loss_stands_for_each():
    progress = _Progress(Shown(), None, count=2)
    progress({"step": LOSS_EVERY, "total": LOSS_EVERY, "loss": 0.5})
    progress({"step": LOSS_EVERY, "total": LOSS_EVERY, "loss": None, "losses": None})  # nothing read yet
    assert progress.histories == [[[LOSS_EVERY, 0.5]], [[LOSS_EVERY, 0.5]]]


@pytest.mark.slow
def test_batched_jobs_report_the_losses_they_have_alone(tmp_path: Path):
    style = image(tmp_path / "style.png", 3, (32, 32))
    contents = [image(tmp_path / f"c{i}.png", 10 + i, (32, 32)) for i in range(2)]
    common = ["--style", style, "--model", "tiny", "--size", "32x32", "--iterations", "20", "--quiet"]
    together = run("style-transfer", *contents, *common, "--batch-size", "2", "-o", tmp_path / "together",
                   "--report", tmp_path / "together.jsonl")
    assert together.exit_code == 0, together.output
    alone = {}
    for content in contents:
        result = run("style-transfer", content, *common, "-o", tmp_path / "alone", "--report", tmp_path / f"{content.stem}.jsonl")
        assert result.exit_code == 0, result.output
        [line] = report_lines(tmp_path / f"{content.stem}.jsonl")
        alone[line["name"]] = line["losses"]
    batched = {line["name"]: line["losses"] for line in report_lines(tmp_path / "together.jsonl")}
    assert len(batched) == 2 and all(len(history) >= 2 for history in batched.values())  # read back every 10 iterations
    first, second = batched.values()
    assert [loss for _, loss in first] != [loss for _, loss in second]
    for name, history in batched.items():
        assert [step for step, _ in history] == [step for step, _ in alone[name]]
        assert [loss for _, loss in history] == pytest.approx([loss for _, loss in alone[name]], rel=5e-3)  # batched = alone up to float drift through Adam
