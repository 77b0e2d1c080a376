"""Masked AD: label maps, their per-layer downsampling, the attention restriction and the init image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from adcli.engine.features import FeatureExtractor, Guide
from adcli.engine.masks import (
    LabelMaps,
    MaskedAttention,
    downsample_labels,
    fill_from_source,
    read_colours,
)
from adcli.engine.models import load_backend
from adcli.errors import InputError
from adcli.losses import ad_loss, reference_attention

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def paint(height: int, width: int, regions: list[tuple[tuple[int, int, int], slice, slice]]) -> np.ndarray:
    """(H, W, 3) uint8 filled red, with each (colour, rows, cols) painted over it."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:] = RED
    for colour, rows, cols in regions:
        pixels[rows, cols] = colour
    return pixels


@pytest.fixture(scope="module")
def backend():
    return load_backend("tiny", device=torch.device("cpu"), dtype=torch.float32)


def test_colours_become_labels_shared_by_both_maps():
    source = paint(8, 12, [(BLUE, slice(None), slice(6, None))])  # non-square, two colours
    target = paint(10, 6, [(BLUE, slice(0, 5), slice(None))])
    maps = LabelMaps.from_colours(source, target, "src", "tgt")
    assert maps.colours == ("#0000ff", "#ff0000")
    assert maps.source.shape == (8, 12) and maps.target.shape == (10, 6)
    assert (maps.source[:, :6] == 1).all() and (maps.source[:, 6:] == 0).all()
    assert (maps.target[:5] == 0).all() and (maps.target[5:] == 1).all()


def test_target_colour_missing_from_source_is_named():
    source = paint(8, 8, [(BLUE, slice(None), slice(4, None))])
    target = paint(8, 8, [(GREEN, slice(2, 4), slice(2, 4))])
    with pytest.raises(InputError, match="#00ff00") as error:
        LabelMaps.from_colours(source, target, "src.png", "tgt.png")
    assert "src.png" in str(error.value) and "tgt.png" in str(error.value)


def test_antialiased_label_map_is_refused(tmp_path):
    ramp = np.linspace(0, 255, 100 * 3, dtype=np.uint8).reshape(1, 100, 3).repeat(4, axis=0)
    Image.fromarray(ramp, "RGB").save(tmp_path / "smooth.png")
    with pytest.raises(InputError, match="colours .*anti-aliased"):
        read_colours(tmp_path / "smooth.png")


@pytest.mark.parametrize("grid", [(4, 6), (2, 3), (5, 3), (1, 1)])
def test_downsampling_picks_the_label_at_each_cell_centre(grid):
    height, width = 12, 18
    labels = (torch.arange(height)[:, None] * 100 + torch.arange(width)[None, :]).long()  # every pixel distinct
    small = downsample_labels(labels, grid)
    assert small.shape == grid
    rows = ((torch.arange(grid[0]) + 0.5) * height / grid[0]).long()
    cols = ((torch.arange(grid[1]) + 0.5) * width / grid[1]).long()
    assert torch.equal(small, labels[rows][:, cols])


def test_label_edges_stay_within_half_a_token_unlike_plain_nearest():
    """A deliberate deviation (README, masked synthesis): an edge drawn 1 px into a 8-px token stays
    at that token's start here; the paper's code ("nearest", top-left samples) moves it a token on."""
    labels = torch.zeros(1, 32, dtype=torch.long)
    labels[:, 1:] = 1
    assert downsample_labels(labels, (1, 4)).tolist() == [[1, 1, 1, 1]]
    paper = torch.nn.functional.interpolate(labels[None, None].float(), size=(1, 4), mode="nearest")
    assert paper[0, 0].long().tolist() == [[0, 1, 1, 1]]


def token_labels(height: int, width: int, grid: tuple[int, int], blue: tuple[slice, slice]) -> list[str]:
    """By hand, for a (height, width) map that is red but for one blue rectangle: each token's
    colour is the pixel under its centre, rows of "R"/"B" letters, one string per token row."""
    rows, cols = grid
    lines = []
    for r in range(rows):
        y = int((r + 0.5) * height / rows)
        line = ""
        for c in range(cols):
            x = int((c + 0.5) * width / cols)
            line += "B" if blue[0].start <= y < blue[0].stop and blue[1].start <= x < blue[1].stop else "R"
        lines.append(line)
    return lines


def same_letter(target_rows: list[str], source_rows: list[str]) -> torch.Tensor:
    """(N, M): True where target token j and source token i, each counted row by row, share a letter."""
    target, source = "".join(target_rows), "".join(source_rows)
    return torch.tensor([[t == s for s in source] for t in target])


def test_masks_follow_each_layers_own_non_square_grid(backend):
    """The tiny UNet's selected layers on 48×80 px (6×10 latents, 3×5 and 6×10 token grids): each
    layer gets the mask of its own grid, tokens in row order, and the loss uses that mask."""
    source_blue, target_blue = (slice(0, 16), slice(8, 16)), (slice(8, 16), slice(10, 30))
    source = paint(16, 16, [(BLUE, *source_blue)])
    target = paint(24, 40, [(BLUE, *target_blue)])
    masked = MaskedAttention(LabelMaps.from_colours(source, target, "s", "t"))
    seen = []

    def recording(target_grid, ref_grid):
        mask = masked(target_grid, ref_grid)
        seen.append((target_grid, ref_grid, mask))
        return mask

    extract = FeatureExtractor(backend, [-6, -5, -4, -3, -2, -1])
    generator = torch.Generator().manual_seed(0)
    reference, latents = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 4, 6, 10, generator=generator)
    guide = Guide(reference=reference, mask_fn=recording)
    with extract.installed(), torch.no_grad():
        target_features = extract(latents, torch.tensor(500))
        reference_features = extract(reference, torch.tensor(500))
        loss = guide.loss(extract, latents, torch.tensor(500))
    assert len(seen) == 6
    grids = {target_grid for target_grid, _, _ in seen}
    assert grids == {layer.grid for layer in target_features.values()} == {(3, 5), (6, 10)}
    expected_loss = 0.0
    for (target_grid, ref_grid, mask), (position, layer) in zip(seen, target_features.items()):
        expected = same_letter(token_labels(24, 40, target_grid, target_blue), token_labels(16, 16, ref_grid, source_blue))
        assert torch.equal(mask, expected), (target_grid, ref_grid)
        ref = reference_features[position]
        expected_loss += float(ad_loss(layer.q, layer.k, layer.v, ref.k, ref.v, expected))
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5)
    # by hand for the 3×5 grid: token centres at rows 4, 12, 20 and columns 4, 12, …, 36 of the 24×40 map
    assert token_labels(24, 40, (3, 5), target_blue) == ["RRRRR", "RBBBR", "RRRRR"]
    assert len(masked._cache) == len({(t, r) for t, r, _ in seen})  # one mask per grid pair, reused


def test_query_gets_zero_attention_weight_on_other_labels():
    """With identity values, reference_attention returns the attention weights themselves."""
    source = paint(12, 8, [(BLUE, slice(None), slice(0, 3)), (GREEN, slice(8, None), slice(None))])
    target = paint(6, 10, [(BLUE, slice(None), slice(7, None)), (GREEN, slice(0, 2), slice(0, 5))])
    maps = LabelMaps.from_colours(source, target, "s", "t")
    target_grid, ref_grid = (3, 5), (6, 4)
    mask = MaskedAttention(maps)(target_grid, ref_grid)
    tokens, keys = mask.shape
    assert (tokens, keys) == (15, 24)
    # By hand: 2×2-pixel tokens, each the colour of the pixel below its centre (rows 1, 3, 5, …).
    target_tokens = ["GGRBB", "RRRBB", "RRRBB"]  # green rows 0–1 × columns 0–4, blue columns 7–9
    source_tokens = ["BRRR"] * 4 + ["GGGG"] * 2  # blue columns 0–2, green rows 8–11
    assert torch.equal(mask, same_letter(target_tokens, source_tokens))

    generator = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, tokens, 8, generator=generator) * 3
    k = torch.randn(1, 2, keys, 8, generator=generator) * 3
    identity = torch.eye(keys).expand(1, 2, keys, keys)
    weights = reference_attention(q, k, identity, mask)  # (1, H, N, M) = softmax(q kᵀ/√d) per query
    unmasked = reference_attention(q, k, identity)
    assert (weights[..., ~mask] == 0).all()
    assert (weights[..., mask] > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, tokens))
    assert (unmasked[..., ~mask] > 0).all()  # without the mask the same queries do look elsewhere


def test_a_label_lost_at_a_coarse_grid_falls_back_to_unmasked_attention():
    """A green target region whose source region (one 2×2 patch) vanishes at a 2×2 reference grid:
    its queries have no key of their own label there, and attend to every key instead (never NaN,
    never zero): by hand, softmax(q kᵀ/√d) over all keys, written out."""
    source = paint(16, 16, [(BLUE, slice(None), slice(8, None)), (GREEN, slice(0, 2), slice(0, 2))])
    target = paint(8, 8, [(BLUE, slice(None), slice(4, None)), (GREEN, slice(0, 4), slice(0, 4))])
    mask = MaskedAttention(LabelMaps.from_colours(source, target, "s", "t"))((2, 2), (2, 2))
    # target tokens G B / R B; source tokens R B / R B: the green query (token 0) has no key
    assert mask.tolist() == [[False, False, False, False], [False, True, False, True],
                             [True, False, True, False], [False, True, False, True]]
    generator = torch.Generator().manual_seed(1)
    q = torch.randn(1, 1, 4, 8, generator=generator)
    k, v = torch.randn(1, 1, 4, 8, generator=generator), torch.randn(1, 1, 4, 8, generator=generator)
    out = reference_attention(q, k, v, mask)[0, 0]
    scores = q[0, 0] @ k[0, 0].T / 8**0.5
    everything = torch.softmax(scores, -1) @ v[0, 0]
    own_label = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)[1:] @ v[0, 0]
    torch.testing.assert_close(out[0], everything[0])
    torch.testing.assert_close(out[1:], own_label)


def test_init_image_holds_only_same_labelled_source_pixels():
    generator = torch.Generator().manual_seed(1)
    source = paint(16, 24, [(BLUE, slice(None), slice(12, None)), (GREEN, slice(0, 4), slice(0, 6))])
    target = paint(20, 12, [(BLUE, slice(0, 10), slice(None)), (GREEN, slice(15, None), slice(6, None))])
    maps = LabelMaps.from_colours(source, target, "s", "t")
    pixels = torch.rand(1, 3, 16, 24, generator=generator) * 2 - 1  # every source pixel a distinct colour

    init = fill_from_source(pixels, maps, (12, 20), torch.Generator().manual_seed(7))
    assert init.shape == (1, 3, 20, 12)
    source_colours = pixels[0].reshape(3, -1).T
    for label in range(len(maps.colours)):
        allowed = {tuple(c) for c in source_colours[maps.source.reshape(-1) == label].tolist()}
        placed = init[0].reshape(3, -1).T[maps.target.reshape(-1) == label].tolist()
        assert placed, f"label {label} is in the target"
        assert all(tuple(c) in allowed for c in placed)
    again = fill_from_source(pixels, maps, (12, 20), torch.Generator().manual_seed(7))
    assert torch.equal(init, again)
