"""The HTML report: a page that parses, links that resolve, every job once, failures with their message."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from adcli.outputs.atomic import replace_atomically
from adcli.views.html_report import loss_curve, write_html_report


class Page(HTMLParser):
    """Tags, attributes and text of a page, checking that every opened element is closed."""

    VOID = {"meta", "img", "br", "rect", "polyline", "link"}

    def __init__(self, markup: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag):
        return [attrs for name, attrs in self.tags if name == tag]


def _rows(tmp_path: Path):
    (tmp_path / "out" / "hubble").mkdir(parents=True)
    done = tmp_path / "out" / "hubble" / "cat & dog.png"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(done)
    skipped = tmp_path / "out" / "old.png"
    Image.new("RGB", (64, 64), (30, 30, 200)).save(skipped)
    common = {"seed": 7, "rank": 0, "settings": {"iterations": 200, "lr": 0.05}}
    return [
        {"index": 2, "name": "hubble/cat", "status": "done", "output": str(done), "seconds": 12.5, "error": None,
         "inputs": {"content": "cat.jpg", "style": ["hubble.jpg"]}, "losses": [[1, 0.9], [5, 0.5], [10, 0.2]], **common},
        {"index": 0, "name": "old", "status": "skipped", "output": str(skipped), "seconds": 0.0, "error": None,
         "inputs": {"content": "old.jpg"}, "losses": [], **common},
        {"index": 1, "name": "broken", "status": "failed", "output": None, "seconds": 0.3,
         "error": "image broken.jpg is broken or truncated <EOF>: re-export or replace it",
         "inputs": {"content": "broken.jpg"}, "losses": None, **common},
    ]


def test_report_parses_links_resolve_and_each_job_appears_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = _rows(tmp_path)
    page_path = write_html_report(tmp_path / "reports" / "run.html", rows, refresh_seconds=10)
    page = Page(page_path.read_text(encoding="utf-8"))
    assert page.open == []
    sections = [attrs["id"] for attrs in page.all("section")]
    assert sections == ["job-0", "job-1", "job-2"]  # each job once, in index order
    links = [attrs["href"] for attrs in page.all("a")]
    assert len(links) == 2
    for href in links:
        assert (page_path.parent / unquote(href)).resolve().is_file()
    thumbnails = [attrs["src"] for attrs in page.all("img")]
    assert len(thumbnails) == 2 and all(src.startswith("data:image/jpeg;base64,") for src in thumbnails)
    text = " ".join(page.text)
    assert "image broken.jpg is broken or truncated <EOF>: re-export or replace it" in text
    assert "1 done, 1 failed, 1 skipped" in text
    assert len(page.all("polyline")) == 1 and len(page.all("polyline")[0]["points"].split()) == 3
    assert any(attrs.get("http-equiv") == "refresh" for attrs in page.all("meta"))


def test_loss_curve_falls_as_the_loss_falls():
    svg = Page(loss_curve([[1, 4.0], [2, 2.0], [3, 1.0], [4, float("nan")]]))
    points = [tuple(map(float, p.split(","))) for p in svg.all("polyline")[0]["points"].split()]
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert [y for _, y in points] == sorted(y for _, y in points)  # SVG y grows downwards: a falling loss
    assert "no loss recorded" in loss_curve([])


def test_report_stays_whole_when_a_rewrite_is_interrupted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = _rows(tmp_path)
    path = write_html_report(tmp_path / "run.html", rows[:1])
    before = path.read_text(encoding="utf-8")

    def interrupted(stream):
        stream.write(b"<!DOCTYPE html><html><body><section")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(path, interrupted, "report")
    assert path.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run.html"]
    write_html_report(path, rows)  # the next job's rewrite has them all
    assert len(Page(path.read_text(encoding="utf-8")).all("section")) == 3
