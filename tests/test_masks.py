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
    label_mask,
    read_colours,
)
from adcli.engine.models import load_backend
from adcli.errors import InputError
from adcli.losses import reference_attention

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


def test_masks_follow_each_layers_own_non_square_grid(backend):
    """The tiny UNet's selected layers on 48×80 px (6×10 latents): every mask matches its layer's tokens."""
    source = paint(16, 16, [(BLUE, slice(None), slice(8, None))])
    target = paint(24, 40, [(BLUE, slice(8, 16), slice(10, 30))])
    masked = MaskedAttention(LabelMaps.from_colours(source, target, "s", "t"))
    seen = []

    def recording(target_grid, ref_grid):
        mask = masked(target_grid, ref_grid)
        seen.append((target_grid, ref_grid, mask.shape))
        return mask

    extract = FeatureExtractor(backend, [-6, -5, -4, -3, -2, -1])
    guide = Guide(reference=torch.randn(1, 4, 8, 8), mask_fn=recording)
    with extract.installed():
        target = extract(torch.randn(1, 4, 6, 10), torch.tensor(500))
        guide.loss(extract, torch.randn(1, 4, 6, 10), torch.tensor(500))
    assert len(seen) == 6
    grids = {target_grid for target_grid, _, _ in seen}
    assert grids == {layer.grid for layer in target.values()}
    assert all(h != w for h, w in grids)  # non-square, never sqrt(tokens)
    for (target_grid, ref_grid, shape), layer in zip(seen, target.values()):
        assert shape == (target_grid[0] * target_grid[1], ref_grid[0] * ref_grid[1])
        assert shape[0] == layer.q.shape[2]
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

    generator = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, tokens, 8, generator=generator) * 3
    k = torch.randn(1, 2, keys, 8, generator=generator) * 3
    identity = torch.eye(keys).expand(1, 2, keys, keys)
    weights = reference_attention(q, k, identity, mask)  # (1, H, N, M) = softmax(q kᵀ/√d) per query
    unmasked = reference_attention(q, k, identity)

    same_label = label_mask(downsample_labels(maps.target, target_grid), downsample_labels(maps.source, ref_grid))
    assert torch.equal(mask, same_label)
    assert (weights[..., ~mask] == 0).all()
    assert (weights[..., mask] > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, tokens))
    assert (unmasked[..., ~mask] > 0).all()  # without the mask the same queries do look elsewhere


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
