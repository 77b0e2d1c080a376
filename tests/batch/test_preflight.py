"""Preflight: a broken input of any role (each of several references too) is reported as one line
naming the file before any model loads (loading can take minutes), and a batch's broken job fails
alone while the others are made."""

from __future__ import annotations

import pytest

import adcli.batch.runner as runner
from tests.support.batch_helpers import image, one_line_error, pngs, report_lines, run
from tests.support.commands import COMMANDS, write_inputs

ROLE_CASES = [(name, role, index) for name, command in COMMANDS.items() for role, files in command.roles.items()
              for index in range(len(files))]


@pytest.fixture
def no_model_load(monkeypatch):
    """Loading a model fails the test: preflight must have stopped the run first."""
    loads = []

    def refuse(*args, **kwargs):
        loads.append(args)
        raise AssertionError("the model was loaded before the broken input was found")

    monkeypatch.setattr(runner, "open_model", refuse)
    return loads


@pytest.mark.parametrize("name, role, index", ROLE_CASES, ids=[f"{n}-{r}{i}" for n, r, i in ROLE_CASES])
def test_a_broken_input_of_any_role_is_one_line_before_the_model_loads(name, role, index, tmp_path, no_model_load):
    command = COMMANDS[name]
    folder = write_inputs(tmp_path)
    broken = folder / command.roles[role][index]
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    line = one_line_error(run(*command.argv(folder)))
    assert str(broken) in line and no_model_load == []
    assert not (folder / "out").exists() or pngs(folder / "out") == []


def test_in_a_batch_the_job_with_a_broken_second_style_fails_alone(tmp_path):
    """Two contents with one style set, a third content with another whose second style is broken."""
    contents = [image(tmp_path / f"c{i}.png", seed=i) for i in range(2)]
    good, broken = image(tmp_path / "good.png", seed=5), tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"content,style\n{contents[0]},{good}\n{contents[1]},{good};{broken}\n{contents[1]},{good}\n")
    report = tmp_path / "run.jsonl"
    result = run("style-transfer", "--manifest", manifest, "-o", tmp_path / "out", "--report", report,
                 "--model", "tiny", "--size", "64x64", "--iterations", "2", "--batch-size", "3", "--quiet")
    assert result.exit_code == 1
    lines = report_lines(report)
    assert [line["status"] for line in lines] == ["done", "failed", "done"]
    assert str(broken) in lines[1]["error"]


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_arch_alone_checks_the_size_multiple_before_the_model_loads(arch, tmp_path, no_model_load):
    """A hub model not downloaded yet cannot be probed, but --arch names its family: a side that is not a
    multiple of 16 px is refused at once instead of after a download."""
    style = image(tmp_path / "style.png", seed=1)
    line = one_line_error(run("t2i", "a house", "--style", style, "--arch", arch, "--size", "104x64", "--quiet",
                              "-o", tmp_path / "out"))
    assert "multiples of 16" in line and no_model_load == []
