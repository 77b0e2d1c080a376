"""Batches that really run (tiny model, 64×64, 2 iterations): resume, batched = one at a time,
failure isolation and exit codes, output and disk faults, a corrupted model, info and rerun."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from adcli.outputs import files as outputs
from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import TINY, image, one_line_error, pixels, pngs, report_lines, run


@pytest.fixture
def files(tmp_path):
    contents = [image(tmp_path / "in" / f"c{i}.png", seed=i) for i in range(3)]
    style = image(tmp_path / "style.png", seed=9)
    return tmp_path, contents, style


@pytest.mark.slow
def test_resume_skips_done_jobs_and_reruns_changed_ones(files):
    root, contents, style = files
    out, report = root / "out", root / "run.jsonl"
    args = ["style-transfer", *contents[:2], "--style", style, "-o", out, "--report", report, *TINY]
    assert run(*args).exit_code == 0
    assert pngs(out) == ["c0_style.png", "c1_style.png"]

    again = run(*args, "--resume")
    assert again.exit_code == 0 and pngs(out) == ["c0_style.png", "c1_style.png"]
    assert [line["status"] for line in report_lines(report)] == ["skipped", "skipped"]

    changed = run(*args, "--resume", "--iterations", "3")  # a changed setting reruns, beside the old files
    assert changed.exit_code == 0
    assert pngs(out) == ["c0_style-1.png", "c0_style.png", "c1_style-1.png", "c1_style.png"]
    assert read_metadata(out / "c0_style-1.png")["settings"]["iterations"] == 3
    assert [line["status"] for line in report_lines(report)] == ["done", "done"]
    run(*args, "--resume", "--iterations", "3")
    assert [line["output"] for line in report_lines(report)] == [str(out / "c0_style-1.png"), str(out / "c1_style-1.png")]

    image(contents[1], seed=42)  # same path, new pixels: only that job runs again
    assert run(*args, "--resume").exit_code == 0
    assert [line["status"] for line in report_lines(report)] == ["skipped", "done"]

    assert run(*args).exit_code == 0  # without --resume nothing is overwritten either
    assert len(pngs(out)) == 7 and "c0_style-2.png" in pngs(out)
    assert run(*args, "--overwrite").exit_code == 0
    assert len(pngs(out)) == 7


@pytest.mark.slow
def test_a_job_alone_in_a_list_and_in_one_unet_batch_gives_the_same_pixels(files):
    root, contents, style = files
    assert run("style-transfer", contents[1], "--style", style, "-o", root / "alone", *TINY).exit_code == 0
    assert run("style-transfer", *contents, "--style", style, "-o", root / "list", *TINY).exit_code == 0
    result = run("style-transfer", *contents, "--style", style, "-o", root / "batched", "--batch-size", "3", *TINY)
    assert result.exit_code == 0, result.output
    alone = pixels(root / "alone" / "c1_style.png")
    assert (pixels(root / "list" / "c1_style.png") == alone).all()
    for name in pngs(root / "list"):
        difference = abs(pixels(root / "list" / name) - pixels(root / "batched" / name))
        assert difference.max() <= 1, name
    assert read_metadata(root / "alone" / "c1_style.png")["seed"] == read_metadata(root / "batched" / "c1_style.png")["seed"]


def test_texture_batch_draws_each_noise_from_its_own_seed(files):
    root, _, style = files
    for folder, size in (("one", "1"), ("three", "3")):
        args = ["texture", "-r", style, "--num-images", "3", "-o", root / folder, "--batch-size", size, *TINY]
        assert run(*args).exit_code == 0
    for name in pngs(root / "one"):
        assert abs(pixels(root / "one" / name) - pixels(root / "three" / name)).max() <= 1, name
    seeds = {read_metadata(root / "three" / name)["seed"] for name in pngs(root / "three")}
    assert len(seeds) == 3


def test_an_unreadable_image_fails_alone_and_the_run_exits_1(files):
    root, contents, style = files
    broken = root / "in" / "c1.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    report = root / "run.jsonl"
    result = run("style-transfer", root / "in", "--style", style, "-o", root / "out", "--report", report, "--batch-size", "3", *TINY)
    assert result.exit_code == 1
    assert pngs(root / "out") == ["c0_style.png", "c2_style.png"]
    lines = report_lines(report)
    assert [line["status"] for line in lines] == ["done", "failed", "done"]
    assert str(broken) in lines[1]["error"] and lines[1]["output"] is None and lines[0]["seconds"] > 0
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed c1_style")]
    assert len(failures) == 1 and "Traceback" not in result.output
    assert "done" in result.stderr and "time per image" in result.stderr  # the summary table


def test_one_job_alone_that_fails_is_a_one_line_error(files):
    root, contents, style = files
    contents[0].write_bytes(b"not an image")
    error = one_line_error(run("style-transfer", contents[0], "--style", style, "-o", root / "out", "--quiet", *TINY))
    assert "is not an image" in error
    assert not (root / "out").exists() or pngs(root / "out") == []


def test_a_diverging_row_fails_with_its_message_and_the_rest_finish(files):
    root, contents, style = files
    manifest = root / "jobs.csv"
    manifest.write_text(f"content,style,lr\n{contents[0]},{style},1e30\n{contents[1]},{style},\n")
    result = run("style-transfer", "--manifest", manifest, "-o", root / "out", *TINY)
    assert result.exit_code == 1
    assert pngs(root / "out") == ["c1_style.png"]
    assert "failed c0_style: the loss became nan" in result.stderr


def test_out_of_gpu_memory_retries_the_batch_one_by_one_and_hints(files, monkeypatch):
    root, contents, style = files
    import adcli.tasks.transfer as transfer

    real = transfer.distill_by_optimization
    alone = []

    def short_of_memory(backend, init, guide, **kwargs):
        """A batch of three does not fit in memory, nor does the third image alone."""
        if init.shape[0] > 1 or len(alone) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        alone.append(init)
        return real(backend, init, guide, **kwargs)

    monkeypatch.setattr(transfer, "distill_by_optimization", short_of_memory)
    report = root / "run.jsonl"
    result = run("style-transfer", *contents, "--style", style, "-o", root / "out", "--batch-size", "3", "--report", report, *TINY)
    assert result.exit_code == 1
    assert "a batch of 3 failed (out of GPU memory: try a smaller --batch-size, --dtype fp16" in result.stderr
    assert pngs(root / "out") == ["c0_style.png", "c1_style.png"]
    failed = report_lines(report)[2]
    assert failed["status"] == "failed" and failed["error"].startswith("out of GPU memory: try --dtype fp16")


def test_an_output_folder_that_cannot_be_written_stops_before_any_work(files):
    root, contents, style = files
    blocker = root / "a-file"
    blocker.write_text("x")
    error = one_line_error(run("style-transfer", contents[0], "--style", style, "-o", blocker / "out", *TINY))
    assert "cannot write to output folder" in error


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_a_usage_error(files):
    root, contents, style = files
    locked = root / "locked"
    locked.mkdir(mode=0o555)
    assert "cannot write to output folder" in one_line_error(run("style-transfer", contents[0], "--style", style, "-o", locked, *TINY))


def test_a_full_disk_stops_the_batch_and_leaves_no_partial_file(files, monkeypatch):
    root, contents, style = files
    writes = []
    real_fsync = os.fsync

    def fsync(fd):
        writes.append(fd)
        if len(writes) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(outputs.os, "fsync", fsync)
    report = root / "run.jsonl"
    result = run("style-transfer", *contents, "--style", style, "-o", root / "out", "--report", report, *TINY)
    assert result.exit_code == 1
    assert [line["status"] for line in report_lines(report)] == ["done", "failed", "not-run"]
    assert "No space left on device" in report_lines(report)[1]["error"]
    assert sorted(p.name for p in (root / "out").iterdir()) == ["c0_style.png"]  # no .partial left behind


def test_a_corrupted_safetensors_model_is_one_line_and_nothing_is_written(files):
    root, contents, style = files
    model = root / "model.safetensors"
    model.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": broken")
    args = ["style-transfer", *contents, "--style", style, "-o", root / "out", "--model", model, "--size", "64x64", "-q"]
    error = one_line_error(run(*args))
    assert str(model) in error and "safetensors" in error
    assert pngs(root / "out") == []


@pytest.mark.slow
def test_info_prints_the_stored_settings_and_rerun_reproduces_the_image(files):
    root, contents, style = files
    assert run("texture", "-r", style, "--num-images", "2", "--seed", "3", "-o", root / "out", *TINY).exit_code == 0
    original = root / "out" / "style_texture_1.png"
    shown = run("info", original)
    assert shown.exit_code == 0
    assert "texture" in shown.stdout and "iterations" in shown.stdout and str(style) in shown.stdout
    as_json = run("info", "--json", original, root / "out" / "style_texture_0.png")
    first, second = (__import__("json").loads(line) for line in as_json.stdout.splitlines())
    assert first["seed"] == read_metadata(original)["seed"] and first["inputs"]["image_index"] == 1
    assert first["seed"] != second["seed"]

    again = run("rerun", original)
    assert again.exit_code == 0, again.output
    copy = root / "out" / "style_texture_1-1.png"
    assert (pixels(copy) == pixels(original)).all()
    assert read_metadata(copy)["seed"] == read_metadata(original)["seed"]
    assert run("rerun", original, "-o", root / "again.png").exit_code == 0
    assert (pixels(root / "again.png") == pixels(original)).all()


def test_info_and_rerun_refuse_files_adcli_did_not_write(files):
    root, contents, _ = files
    assert "no adcli settings" in one_line_error(run("info", contents[0]))
    assert "no adcli settings" in one_line_error(run("rerun", contents[0]))
    assert "does not exist" in one_line_error(run("info", root / "nothing.png"))


def test_rank_and_world_size_set_by_hand_split_the_list_without_overlap(files, monkeypatch):
    root, contents, style = files
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    made = []
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        result = run("style-transfer", *contents, "--style", style, "-o", root / "out", "--report", root / "run.jsonl", *TINY)
        assert result.exit_code == 0, result.output
        made.append(result.stdout.split())
    assert [len(paths) for paths in made] == [2, 1] and not set(made[0]) & set(made[1])
    assert pngs(root / "out") == ["c0_style.png", "c1_style.png", "c2_style.png"]
    assert [line["index"] for line in report_lines(root / "run.rank1.jsonl")] == [1]
