"""What a run shows while and after it works: the live progress bar in a real terminal, the preview
file, the animation, the HTML report and the contact sheet of a batch."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import adcli.views.watchers as watchers
from adcli.views.preview import PreviewWriter
from tests.support.batch_helpers import TINY, image, pixels, run
from tests.support.terminal import run_in_pty

def run_in_terminal(*args: str, timeout: float = 240) -> str:
    """``python -m adcli ARGS`` with a pseudo-terminal as stdout and stderr; everything it drew."""
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="160", TERM="xterm-256color")
    code, screen = run_in_pty(list(args), env, timeout=timeout)
    assert code == 0, screen[-2000:]
    return screen


@pytest.mark.subprocess
@pytest.mark.slow
def test_progress_moves_in_a_real_terminal_with_loss_and_eta(tmp_path):
    content, style = image(tmp_path / "c.png", 1), image(tmp_path / "s.png", 2)
    screen = run_in_terminal("style-transfer", str(content), "--style", str(style), "--model", "tiny", "--size", "64x64",
                             "--iterations", "300", "-o", str(tmp_path / "out.png"))
    counts = {int(done) for done in re.findall(r"\b(\d+)/300\b", screen)}
    assert any(0 < done < 300 for done in counts), screen[-1500:]  # the bar moved while the image formed
    assert re.search(r"loss \d+\.\d{4}", screen)
    assert re.search(r"\d:\d\d:\d\d", screen)  # elapsed time / ETA columns


@pytest.mark.subprocess
@pytest.mark.slow
def test_sampling_progress_names_step_and_ad_iteration(tmp_path):
    style = image(tmp_path / "s.png", 2)
    screen = run_in_terminal("t2i", "a house", "--style", str(style), "--model", "tiny", "--size", "64x64",
                             "--steps", "40", "--ad-iterations", "2", "-o", str(tmp_path / "t.png"))
    assert re.search(r"step \d+/40 · AD iteration [12]/2", screen), screen[-1500:]


def test_preview_exists_while_the_image_forms_and_is_gone_after(tmp_path, monkeypatch):
    seen = []

    class Spy(PreviewWriter):
        def close(self) -> None:
            self.flush(timeout=10)
            seen.append((self.path, self.path.is_file(), self.written))
            super().close()

    monkeypatch.setattr(watchers, "PreviewWriter", Spy)
    content, style = image(tmp_path / "c.png", 1), image(tmp_path / "s.png", 2)
    out = tmp_path / "out.png"
    result = run("style-transfer", content, "--style", style, *TINY, "--iterations", "6", "--preview-every", "2", "-o", out)
    assert result.exit_code == 0, result.output
    [(path, existed, written)] = seen
    assert path == tmp_path / "out.preview.png" and existed and written >= 1
    assert not path.exists() and out.is_file()


def test_animation_has_frames_and_ends_on_the_result(tmp_path):
    content, style = image(tmp_path / "c.png", 1), image(tmp_path / "s.png", 2)
    out, animation = tmp_path / "out.png", tmp_path / "run.webp"
    result = run("style-transfer", content, "--style", style, *TINY, "--iterations", "6", "--animation", animation,
                 "--animation-every", "2", "-o", out)
    assert result.exit_code == 0, result.output
    with Image.open(animation) as opened:
        assert opened.n_frames >= 3  # steps 2, 4 (6 and the result: WebP may merge two equal frames)
        opened.seek(opened.n_frames - 1)
        last = np.asarray(opened.convert("RGB")).astype(int)
    assert np.array_equal(last, pixels(out))


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links += [value for name, value in attrs if name == "href"]

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.slow
def test_a_batch_writes_an_html_report_and_a_contact_sheet(tmp_path):
    styles = tmp_path / "styles"
    image(styles / "ink.png", 2), image(styles / "oil.png", 3)
    contents = tmp_path / "photos"
    image(contents / "cat.png", 4)
    (contents / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    report, sheet, jsonl = tmp_path / "run.html", tmp_path / "sheet.png", tmp_path / "run.jsonl"
    result = run("style-transfer", contents, "--style", styles, *TINY, "-o", tmp_path / "out", "--report", report, "--sheet", sheet)
    assert result.exit_code == 1  # the broken photo's two jobs failed; the others were made
    page = _Page()
    page.feed(report.read_text(encoding="utf-8"))
    markup = report.read_text(encoding="utf-8")
    names = re.findall(r'<div class="name">([^<]*)</div>', markup)
    assert sorted(names) == ["broken_ink", "broken_oil", "cat_ink", "cat_oil"]  # each job once
    errors = re.findall(r'<div class="error">([^<]*)</div>', markup)
    assert len(errors) == 2 and all("broken.png" in error for error in errors)
    targets = [link for link in page.links if not link.startswith(("#", "data:"))]
    assert targets and all((report.parent / link).resolve().is_file() for link in targets)
    assert "<polyline" in report.read_text(encoding="utf-8")  # the loss curves
    with Image.open(sheet) as opened:
        assert opened.width > 64 and opened.height > 64
    assert run("style-transfer", contents / "cat.png", "--style", styles, *TINY, "-o", tmp_path / "again",
               "--report", jsonl).exit_code == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert all(line["losses"] and line["losses"][-1][0] == 2 for line in lines)  # [step, loss], the last step included


@pytest.mark.parametrize("suffix", [".html", ".jsonl"])
def test_a_dry_run_report_lists_every_job_as_planned(tmp_path, suffix):
    content, style = image(tmp_path / "c.png", 1), image(tmp_path / "s.png", 2)
    report = tmp_path / f"plan{suffix}"
    assert run("style-transfer", content, "--style", style, *TINY, "--dry-run", "--report", report, "-o", tmp_path / "o").exit_code == 0
    assert "c_s" in report.read_text(encoding="utf-8")
