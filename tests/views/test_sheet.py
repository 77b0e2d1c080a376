"""`adcli sheet`: cells where their metadata puts them, input images as headers, bad input in one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from adcli.errors import InputError
from adcli.outputs.files import write_png
from adcli.views.sheet import SheetImage, plan_sheet, sheet_font

CELL = 64


def _flat(path, colour, size=(32, 32)):
    Image.new("RGB", size, colour).save(path)
    return path


def _output(path, colour, task="style-transfer", inputs=None, seed=1, **settings):
    metadata = {"task": task, "inputs": inputs or {}, "settings": {"lr": 0.05, **settings}, "seed": seed}
    return write_png(Image.new("RGB", (40, 40), colour), path, metadata)


def _colour_at(image, x, y):
    return tuple(int(v) for v in np.asarray(image.convert("RGB"))[y, x])


@pytest.fixture
def transfer_batch(tmp_path, monkeypatch):
    """2 contents × 3 styles, each output one flat colour; input paths relative, as a run records them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "out" / "sub").mkdir(parents=True)
    contents = [_flat(tmp_path / "in" / f"c{i}.png", (10 + i, 250, 10)) for i in range(2)]
    styles = [_flat(tmp_path / "in" / f"s{j}.jpg", (250, 10, 40 * j)) for j in range(3)]
    colours = {}
    for i in range(2):
        for j in range(3):
            colour = (40 * i + 20, 30 * j + 60, 200)
            folder = tmp_path / "out" / ("sub" if j == 2 else "")  # a folder is searched through its subfolders
            _output(folder / f"c{i}_s{j}.png", colour, inputs={"content": f"in/c{i}.png", "style": [f"in/s{j}.jpg"]})
            colours[i, j] = colour
    return tmp_path, contents, styles, colours


def test_cells_and_headers_sit_where_the_metadata_says(transfer_batch, cli):
    root, contents, styles, colours = transfer_batch
    from adcli.views.sheet import make_sheet

    result = make_sheet([root / "out"], root / "sheet.png", cell=CELL)
    assert (result.rows, result.cols, result.shown, result.skipped, result.notes) == ("content", "style", 6, [], [])
    with Image.open(result.path) as sheet:
        geo = result.geometry
        for (i, j), colour in colours.items():
            x, y = geo.cell_origin(i, j)
            assert _colour_at(sheet, x + CELL // 2, y + CELL // 2) == colour
        # the input pictures are the headers: contents left of their row, styles above their column
        for i in range(2):
            _, y = geo.cell_origin(i, 0)
            assert _colour_at(sheet, 6 + 8, y + 2 * geo.line + 8) == (10 + i, 250, 10)
        for j in range(3):
            x, _ = geo.cell_origin(0, j)
            red, green, blue = _colour_at(sheet, x + CELL // 2, geo.top - 6 - 2 * geo.line - 16)
            assert abs(red - 250) + abs(green - 10) + abs(blue - 40 * j) < 12  # a JPEG input
    assert sorted(p.name for p in root.iterdir()) == ["in", "out", "sheet.png"]  # no temporary left


def test_default_axes_follow_the_task():
    def images(task, inputs_of, count, base_seed=lambda n: 0):
        return [SheetImage(f"{task}{n}.png", {"task": task, "inputs": inputs_of(n), "settings": {"seed": base_seed(n)},
                                              "seed": 1000 + n}) for n in range(count)]

    t2i = plan_sheet(images("t2i", lambda n: {"prompt": f"p{n % 2}", "style": [f"s{n // 2}.png"]}, 4))
    assert (t2i.rows.field, t2i.cols.field) == ("prompt", "style")
    assert t2i.cells == {(0, 0): "t2i0.png", (1, 0): "t2i1.png", (0, 1): "t2i2.png", (1, 1): "t2i3.png"}
    # textures: reference × the base seed (runs with other --seed values) …
    texture = plan_sheet(images("texture", lambda n: {"reference": [f"r{n % 2}.png"]}, 4, lambda n: 9 - n))
    assert (texture.rows.field, texture.cols.field) == ("reference", "seed")
    assert texture.cells == {(0, 3): "texture0.png", (1, 2): "texture1.png", (0, 1): "texture2.png",
                             (1, 0): "texture3.png"}  # seeds ascend: 6, 7, 8, 9
    # … or, all from one run, reference × image_index (--num-images)
    one_run = plan_sheet(images("texture", lambda n: {"reference": [f"r{n % 2}.png"], "image_index": n // 2}, 4))
    assert (one_run.cols.field, len(one_run.cells)) == ("image_index", 4)
    appearance = plan_sheet(images("appearance", lambda n: {"structure": "a.png", "appearance": ["b.png"]}, 1))
    assert (appearance.rows.field, appearance.cols.field) == ("structure", "appearance")


def test_any_two_settings_make_the_grid(transfer_batch):
    root, *_ = transfer_batch
    images = [SheetImage(f"{lr}_{seed}.png", {"task": "texture", "inputs": {}, "settings": {"lr": lr}, "seed": seed})
              for lr in (0.1, 0.05) for seed in (7, 3)]
    layout = plan_sheet(images, rows="lr", cols="image_seed")
    assert [layout.rows.values[k] for k in layout.rows.shown] == [0.05, 0.1]
    assert layout.cells[0, 0] == "0.05_3.png" and layout.cells[1, 1] == "0.1_7.png"
    with pytest.raises(InputError, match="--rows colour: no image has that field; fields these images have: image_seed, lr, task"):
        plan_sheet(images, rows="colour")
    with pytest.raises(InputError, match="both name lr"):
        plan_sheet(images, rows="lr", cols="lr")


def test_ten_thousand_images_make_a_bounded_sheet():
    images = [SheetImage(f"{c}_{s}.png", {"task": "style-transfer", "inputs": {"content": f"c{c:03}.png",
                                                                              "style": [f"s{s:03}.png"]}})
              for c in range(100) for s in range(100)]
    layout = plan_sheet(images, max_cells=400)
    assert (layout.rows.kept, layout.cols.kept, len(layout.cells), layout.left_out) == (20, 20, 400, 9600)
    assert "showing 20 of 100 content rows and 20 of 100 style columns: 9600 image(s) left out" in layout.notes[0]
    wide = plan_sheet(images[:300], max_cells=40)  # 3 contents × 100 styles: keep the 3 rows
    assert (wide.rows.kept, wide.cols.kept) == (3, 13)


def test_images_sharing_a_cell_are_noted():
    images = [SheetImage(f"{n}.png", {"task": "style-transfer", "inputs": {"content": "c.png", "style": ["s.png"]},
                                      "seed": n}) for n in range(3)]
    layout = plan_sheet(images)
    assert layout.cells == {(0, 0): "0.png"} and layout.shared == 2 and "share a cell" in layout.notes[0]


def test_the_bundled_font_needs_no_system_font():
    font = sheet_font(20)
    assert font.getbbox("Hg")[3] > 13  # the size was honoured: Pillow's own scalable font


def test_cli_writes_the_sheet_and_lists_images_without_settings(transfer_batch, cli):
    root, *_ = transfer_batch
    _flat(root / "out" / "plain.png", (1, 2, 3))
    (root / "out" / "notes.txt").write_text("not an image, ignored in a folder")
    result = cli("sheet", "out", "--rows", "style", "--cols", "content", "-o", "sheets/grid.webp")
    assert result.exit_code == 0, result.output
    assert "skipped out/plain.png: no adcli settings in it" in result.stderr
    assert result.stdout.strip() == "sheets/grid.webp"
    with Image.open(root / "sheets" / "grid.webp") as sheet:
        assert sheet.format == "WEBP"
    again = cli("sheet", "out/*.png", "-o", "sheets/grid.webp")  # a quoted glob; an existing sheet
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert cli("sheet", "out/*.png", "-o", "sheets/grid.webp", "--overwrite").exit_code == 0


@pytest.mark.parametrize("arguments, message", [
    (["notes.txt"], "notes.txt is not an image"),
    (["empty"], "folder empty holds no images"),
    (["plain.png"], "none of the 1 image(s) has adcli settings"),
    (["out", "--rows", "colour"], "--rows colour: no image has that field"),
    (["out", "-o", "sheet.gif"], "a contact sheet is a .png, .jpg or .webp file"),
    (["missing/"], "does not exist"),
])
def test_cli_bad_input_is_one_line_and_exit_2(transfer_batch, cli, arguments, message):
    root, *_ = transfer_batch
    (root / "notes.txt").write_text("hello")
    (root / "empty").mkdir()
    _flat(root / "plain.png", (1, 2, 3))
    output = [] if "-o" in arguments else ["-o", "sheet.png"]
    result = cli("sheet", *arguments, *output)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (root / "sheet.png").exists()
