"""Inputs of a batch, checked with --dry-run (no model is loaded): files, folders, globs, pairing,
name templates, manifests and their mistakes."""

from __future__ import annotations

import json

import pytest

from tests.support.batch_helpers import TINY, image, one_line_error, report_lines, run


@pytest.fixture
def inputs(tmp_path):
    contents = [image(tmp_path / "photos" / f"c{i}.png", seed=i) for i in (1, 2, 10)]
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    styles = [image(tmp_path / "styles" / f"{name}.jpg", seed=20 + i) for i, name in enumerate(("ink", "oil"))]
    return tmp_path, contents, styles


def planned(result) -> list[list[str]]:
    """The dry run's lines: index, output path, status, … (one job a line on stdout)."""
    assert result.exit_code == 0, result.output
    return [line.split() for line in result.stdout.splitlines() if line.strip()]


def test_folder_gives_its_images_in_natural_order_and_notes_the_rest(inputs):
    root, _, styles = inputs
    result = run("style-transfer", root / "photos", "--style", styles[0], "-o", root / "out", "--dry-run", *TINY)
    lines = planned(result)
    assert [line[1] for line in lines] == [str(root / "out" / f"c{i}_ink.png") for i in (1, 2, 10)]
    assert all(line[2] == "new" for line in lines)
    assert "skipped 1 non-image file(s)" in result.stderr and "notes.txt" in result.stderr
    assert not (root / "out").exists()


def test_pair_product_is_every_content_with_every_style_job(inputs):
    root, contents, _ = inputs
    result = run("style-transfer", *contents[:2], "--style", root / "styles", "-o", root / "out", "--dry-run", *TINY)
    names = [line[1].rsplit("/", 1)[1] for line in planned(result)]
    assert names == ["c1_ink.png", "c1_oil.png", "c2_ink.png", "c2_oil.png"]


def test_pair_zip_matches_the_ith_content_with_the_ith_style(inputs):
    root, contents, _ = inputs
    glob = str(root / "styles" / "*.jpg")
    result = run("style-transfer", *contents[:2], "--style", glob, "--pair", "zip", "-o", root / "out", "--dry-run", *TINY)
    names = [line[1].rsplit("/", 1)[1] for line in planned(result)]
    assert names == ["c1_ink.png", "c2_oil.png"]
    error = one_line_error(run("style-transfer", *contents, "--style", glob, "--pair", "zip", "--dry-run", *TINY))
    assert "3 content(s) and 2 style job(s)" in error


def test_single_style_files_are_distilled_together_and_join_every_folder_job(inputs):
    root, contents, styles = inputs
    together = run("style-transfer", contents[0], "--style", styles[0], "--style", styles[1], "-o", root / "out", "--dry-run", *TINY)
    [line] = planned(together)
    assert line[1].endswith("c1_ink_oil.png") and f"style={styles[0]}+{styles[1]}" in line
    extra = image(root / "paper.png", seed=30)
    mixed = run("style-transfer", contents[0], "--style", root / "styles", "--style", extra, "-o", root / "out", "--dry-run", *TINY)
    assert [line[1].rsplit("/", 1)[1] for line in planned(mixed)] == ["c1_ink_paper.png", "c1_oil_paper.png"]


def test_name_template_fields_subfolders_and_unknown_fields(inputs):
    root, contents, _ = inputs
    args = ["style-transfer", *contents[:2], "--style", root / "styles", "-o", root / "out", "--dry-run", *TINY]
    result = run(*args, "--name", "{style}/{index:02d}_{content}_{seed}", "--seed", "7")
    names = [line[1] for line in planned(result)]
    assert names[0] == str(root / "out" / "ink" / "00_c1_7.png") and names[3] == str(root / "out" / "oil" / "03_c2_7.png")
    error = one_line_error(run(*args, "--name", "{content}_{colour}"))
    assert "colour" in error and "content" in error and "style" in error and "item_seed" in error
    assert "inside the output folder" in one_line_error(run(*args, "--name", "../{content}"))


def test_same_names_from_different_folders_stay_apart(tmp_path):
    a, b = image(tmp_path / "a" / "cat.png", 1), image(tmp_path / "b" / "cat.png", 2)
    style = image(tmp_path / "s.png", 3)
    result = run("style-transfer", a, b, "--style", style, "-o", tmp_path / "out", "--dry-run", *TINY)
    assert [line[1].rsplit("/", 1)[1] for line in planned(result)] == ["cat_s.png", "cat_s_2.png"]


def test_seeds_are_per_job_and_do_not_depend_on_the_other_jobs(inputs):
    root, contents, styles = inputs
    alone = planned(run("style-transfer", contents[1], "--style", styles[0], "--dry-run", *TINY))
    batch = planned(run("style-transfer", *contents, "--style", styles[0], "--dry-run", *TINY))
    seed = alone[0][alone[0].index("seed") + 1]
    assert batch[1][batch[1].index("seed") + 1] == seed
    assert len({line[line.index("seed") + 1] for line in batch}) == 3


def test_dry_run_report_lists_every_job(inputs):
    root, contents, _ = inputs
    report = root / "plan.jsonl"
    run("style-transfer", *contents, "--style", root / "styles", "--dry-run", "--report", report, "-o", root / "out", *TINY)
    lines = report_lines(report)
    assert [line["index"] for line in lines] == list(range(6))
    assert {line["status"] for line in lines} == {"planned"} and all(line["output"].endswith(".png") for line in lines)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: root / "empty", "holds no images"),
        (lambda root: str(root / "photos" / "*.webp"), "matches no file"),
        (lambda root: root / "missing.png", "does not exist"),
    ],
    ids=["empty-folder", "glob-matching-nothing", "missing-file"],
)
def test_inputs_that_name_no_image_are_usage_errors(inputs, make, expected):
    root, _, styles = inputs
    (root / "empty").mkdir()
    error = one_line_error(run("style-transfer", make(root), "--style", styles[0], "-o", root / "out", *TINY))
    assert expected in error
    assert not (root / "out").exists()


def test_no_inputs_at_all_is_a_usage_error(inputs):
    root, contents, _ = inputs
    assert "no content image given" in one_line_error(run("style-transfer", "--style", contents[0], *TINY))
    assert "no style image given" in one_line_error(run("style-transfer", contents[0], *TINY))


def write_csv(path, text):
    path.write_text(text)
    return path


def test_csv_manifest_rows_with_paths_relative_to_it_names_and_overrides(inputs):
    root, _, _ = inputs
    manifest = write_csv(root / "jobs.csv", "content,style,seed,name,iterations\n"
                         "photos/c1.png,styles/ink.jpg,5,first,\n"
                         "photos/c2.png,styles/ink.jpg;styles/oil.jpg,,{content}_both,3\n")
    report = root / "plan.jsonl"
    result = run("style-transfer", "--manifest", manifest, "-o", root / "out", "--dry-run", "--report", report, *TINY)
    lines = planned(result)
    assert [line[1] for line in lines] == [str(root / "out" / "first.png"), str(root / "out" / "c2_both.png")]
    assert f"style={root / 'styles/ink.jpg'}+{root / 'styles/oil.jpg'}" in lines[1]
    seeds = [line["seed"] for line in report_lines(report)]
    alone = planned(run("style-transfer", root / "photos/c1.png", "--style", root / "styles/ink.jpg", "--seed", "5", "--dry-run", *TINY))
    assert seeds[0] == int(alone[0][alone[0].index("seed") + 1])


def test_jsonl_manifest(inputs):
    root, _, _ = inputs
    manifest = root / "jobs.jsonl"
    rows = [{"content": "photos/c1.png", "style": ["styles/ink.jpg"], "lr": 0.1}, {"content": "photos/c2.png", "style": "styles/oil.jpg"}]
    manifest.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    lines = planned(run("style-transfer", "--manifest", manifest, "-o", root / "out", "--dry-run", *TINY))
    assert [line[1].rsplit("/", 1)[1] for line in lines] == ["c1_ink.png", "c2_oil.png"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("content,style\nphotos/c1.png,styles/ink.jpg\nphotos/c2.png,\n", "line 3: no style"),
        ("content,style,colour\nphotos/c1.png,styles/ink.jpg,red\n", "line 2: unknown column(s) colour"),
        ("content,style,iterations\nphotos/c1.png,styles/ink.jpg,many\n", "line 2: iterations 'many'"),
        ("content,style,iterations\nphotos/c1.png,styles/ink.jpg,0\n", "line 2: iterations must be between 1 and 100000"),
        ("content,style\n", "has no jobs"),
    ],
    ids=["missing-column", "unknown-key", "wrong-type", "bad-value", "no-rows"],
)
def test_manifest_mistakes_name_the_line_and_nothing_runs(inputs, text, expected):
    root, _, _ = inputs
    manifest = write_csv(root / "jobs.csv", text)
    error = one_line_error(run("style-transfer", "--manifest", manifest, "-o", root / "out", *TINY))
    assert expected in error
    assert not (root / "out").exists()


def test_manifest_mistakes_in_jsonl(inputs):
    root, _, _ = inputs
    manifest = root / "jobs.jsonl"
    manifest.write_text('{"content": "photos/c1.png", "style": "styles/ink.jpg", "strength": 1}\n')
    assert "line 1: unknown column(s) strength" in one_line_error(run("style-transfer", "--manifest", manifest, *TINY))
    manifest.write_text('{"content": "photos/c1.png"}\n')
    assert "line 1: no style" in one_line_error(run("style-transfer", "--manifest", manifest, *TINY))
    manifest.write_text('{"content": "photos/c1.png",\n')
    assert "line 1 is not valid JSON" in one_line_error(run("style-transfer", "--manifest", manifest, *TINY))


def test_manifest_and_command_line_inputs_do_not_mix(inputs):
    root, contents, _ = inputs
    manifest = write_csv(root / "jobs.csv", "content,style\nphotos/c1.png,styles/ink.jpg\n")
    error = one_line_error(run("style-transfer", contents[0], "--manifest", manifest, *TINY))
    assert "not both" in error


def test_texture_takes_a_folder_of_references_and_a_manifest(inputs):
    root, _, _ = inputs
    lines = planned(run("texture", "-r", root / "styles", "--num-images", "2", "-o", root / "out", "--dry-run", *TINY))
    assert [line[1].rsplit("/", 1)[1] for line in lines] == ["ink_texture_0.png", "ink_texture_1.png", "oil_texture_0.png", "oil_texture_1.png"]
    manifest = write_csv(root / "t.csv", "reference,image_index,name\nstyles/ink.jpg,3,{reference}-{image_index}\n")
    [line] = planned(run("texture", "--manifest", manifest, "-o", root / "out", "--dry-run", *TINY))
    assert line[1].endswith("ink-3.png")


def test_prompt_slugs_keep_the_letters_of_every_script():
    from adcli.outputs.naming import slug

    assert slug("A cat, on a bench!") == "a-cat-on-a-bench"
    assert slug("чай у моря") == "чай-у-моря"
    assert slug("富士山の夜明け") == "富士山の夜明け"
    assert slug("नमस्ते दुनिया") == "नमस्ते-दुनिया"  # vowel signs are kept with their letters
    assert slug('a/b\\c:*?"<>|..') == "a-b-c" and slug("!!!") == "no-prompt"
