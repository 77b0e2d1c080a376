"""Planning a run: unique output names in constant time per job, and a big --dry-run that stays
fast and never loads the model libraries."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from adcli.batch.plan import UniqueNames
from tests.support.batch_helpers import image

ROOT = Path(__file__).resolve().parents[2]


def numbered_the_slow_way(stems: list[str]) -> list[str]:
    """What a run has always named its outputs: the first free ``stem``, ``stem_2``, ``stem_3``…
    (case-insensitively), trying from 2 for every job."""
    used, names = set(), []
    for base in stems:
        stem, number = base, 1
        while stem.lower() in used:
            number += 1
            stem = f"{base}_{number}"
        used.add(stem.lower())
        names.append(stem)
    return names


def test_unique_names_are_the_ones_runs_always_gave():
    rng = random.Random(3)
    tricky = ["cat", "cat", "cat_2", "Cat", "cat_3", "cat_2", "dog", "cat", "CAT_2", "cat_2_2", "cat"]
    for stems in [tricky, [rng.choice(["a", "A", "a_2", "a_3", "b", "a_2_2"]) for _ in range(400)]]:
        names = UniqueNames()
        assert [names.claim(stem) for stem in stems] == numbered_the_slow_way(stems)


def test_one_name_repeated_costs_one_lookup_per_job():
    """The work per job stays constant: 20,000 jobs of one name look at the used names ~20,000
    times, not the ~200,000,000 times of trying 2, 3, … for each job."""

    class CountingSet(set):
        lookups = 0

        def __contains__(self, item):
            CountingSet.lookups += 1
            return super().__contains__(item)

    names = UniqueNames()
    names.used = CountingSet()
    claimed = [names.claim("c_s") for _ in range(20_000)]
    assert claimed[:3] == ["c_s", "c_s_2", "c_s_3"] and claimed[-1] == "c_s_20000"
    assert CountingSet.lookups <= 3 * 20_000


def _dry_run(args: list[str], cwd: Path) -> tuple[str, list[str], float]:
    """``adcli ARGS --dry-run`` in a fresh interpreter: what it printed, the model libraries it
    imported, and how long the command took after start-up."""
    code = (
        "import sys, time\n"
        "from adcli.cli.app import app\n"
        "began = time.perf_counter()\n"
        f"try:\n    app({args!r} + ['--dry-run'], prog_name='adcli')\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "sys.stderr.write(f'\\nSECONDS {time.perf_counter() - began}\\n')\n"
        "sys.stderr.write('IMPORTED ' + ','.join(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules) + '\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, check=True)
    seconds = float(done.stderr.split("SECONDS ")[1].split()[0])
    imported = [m for m in done.stderr.split("IMPORTED ")[1].strip().split(",") if m]
    return done.stdout, imported, seconds


@pytest.mark.subprocess
@pytest.mark.slow
def test_a_100000_row_manifest_plans_in_seconds_without_the_model_libraries(tmp_path):
    image(tmp_path / "c.png"), image(tmp_path / "s.png", 1)
    (tmp_path / "jobs.csv").write_text("content,style\n" + "c.png,s.png\n" * 100_000)
    listed, imported, seconds = _dry_run(["style-transfer", "--manifest", "jobs.csv", "-o", "out"], tmp_path)
    lines = listed.splitlines()
    assert len(lines) == 100_000 and "out/c_s.png" in lines[0] and "out/c_s_100000.png" in lines[-1]
    assert imported == []
    assert seconds < 60, seconds  # ~4 s here; trying 2, 3, … for every job took ~20 minutes


@pytest.mark.subprocess
def test_planning_masked_textures_and_t2i_imports_no_model_library(tmp_path):
    masks = ROOT / "samples" / "masks"
    _, imported, _ = _dry_run(["texture", "-r", str(masks / "source_texture.png"), "--source-mask", str(masks / "source_labels.png"),
                               "--target-mask", str(masks / "target_labels.png"), "--num-images", "2", "-o", "out"], tmp_path)
    assert imported == []
    style = image(tmp_path / "s.png", 1)
    _, imported, _ = _dry_run(["t2i", "a cat", "--style", str(style), "--layout", str(style), "--model", "tiny", "-o", "out"], tmp_path)
    assert imported == []


def test_resume_lists_an_output_folder_once_for_all_its_jobs(tmp_path, monkeypatch):
    """The numbered variants of each job's output are those free_path makes, read from one listing."""
    import re

    from adcli.outputs import files

    names = ["a.png", "a-1.png", "a-2.png", "a-10.png", "a-1-2.png", "a-x.png", "b-1.png", "a-3.jpg", "a.b-4.png", "c-5", "A-7.png"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    listed = []
    real = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: listed.append(self) or real(self))

    def the_slow_way(path: Path) -> list[Path]:
        pattern = re.compile(re.escape(path.stem) + r"-(\d+)" + re.escape(path.suffix))
        found = sorted((int(m.group(1)), tmp_path / n) for n in names if (m := pattern.fullmatch(n)))
        return [path] * path.exists() + [entry for _, entry in found]

    for stem in ["a.png", "a-1.png", "b.png", "a.jpg", "a.b.png", "c", "A.png", "d.png", "a-x.png"]:
        assert files.numbered_variants(tmp_path / stem) == the_slow_way(tmp_path / stem), stem
    assert listed == [tmp_path]  # once, however many jobs ask
    (tmp_path / "b-2.png").write_bytes(b"")
    names.append("b-2.png")
    assert files.numbered_variants(tmp_path / "b.png") == the_slow_way(tmp_path / "b.png")  # a changed folder is read again
