"""Seamless tiling on the transformers, which have no padded convolutions: each pass sees the latent
rolled by whole tokens (offsets spread over the picture), features come back in the picture's own
token order, MultiDiffusion wraps its windows (rolled full-axis views on a short axis), and the
tiled outputs pass `adcli tile-preview`'s seam check."""

from __future__ import annotations

import re

import pytest
import torch

import adcli
from adcli.engine.archs.flow import pack_latents
from adcli.engine.attention import LayerFeatures
from adcli.engine.multidiffusion import coverage, windows
from adcli.engine.rolling import Rolling, roll, unroll, unroll_features
from tests.support.batch_helpers import one_line_error, run

GRASS, BRICK = "samples/style/grass.jpg", "samples/style/brick.jpg"


def test_offsets_are_whole_tokens_spread_over_the_picture_and_only_on_wrapped_axes():
    rolling = Rolling(wrap_y=True, wrap_x=True, multiple=2)
    shifts = [rolling.shift(index, (16, 24)) for index in range(12)]
    assert all(dy % 2 == 0 and dx % 2 == 0 and 0 <= dy < 16 and 0 <= dx < 24 for dy, dx in shifts)
    assert len({dy for dy, _ in shifts}) >= 6 and len({dx for _, dx in shifts}) >= 8  # not stuck on a few places
    assert all(dx == 0 for _, dx in (Rolling(True, False, 2).shift(i, (16, 24)) for i in range(12)))
    assert rolling.shift(3, (16, 24)) == rolling.shift(3, (16, 24))  # a run is reproducible


def test_roll_and_unroll_are_inverse_circular_shifts():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    rolled = roll(x, (2, 4))
    assert rolled[0, 0, 2, 4] == x[0, 0, 0, 0] and torch.equal(unroll(rolled, (2, 4)), x)


@pytest.mark.parametrize("text_first", [True, False])  # FLUX: [text, image]; SD3: [image, text]
def test_features_come_back_in_the_pictures_token_order(text_first):
    """Image rows of a rolled pass, where each row is that token's own packed latent, unroll to the
    unrolled latent's tokens; text rows stay where they are."""
    z = torch.randn(1, 16, 6, 8)
    shift = (2, 6)  # latent pixels: one token down, three right
    tokens = pack_latents(roll(z, shift))[:, None]  # (1, 1, 12, 64): the rolled pass's image rows
    text = torch.randn(1, 1, 3, 64)
    rows = torch.cat([text, tokens], 2) if text_first else torch.cat([tokens, text], 2)
    image = slice(3, 15) if text_first else slice(0, 12)
    text_slice = slice(0, 3) if text_first else slice(12, 15)
    layer = LayerFeatures(q=rows, k=rows, v=rows, out=rows, grid=(3, 4), text=text_slice, image=image)
    [back] = unroll_features({0: layer}, shift, (6, 8)).values()
    assert torch.equal(back.q[:, :, image], pack_latents(z)[:, None])
    assert torch.equal(back.out[:, :, text_slice], text)


def test_short_wrapped_axes_get_rolled_full_views_on_a_transformer():
    """A UNet wraps by itself (one window); a transformer averages views of the whole axis from every stride."""
    assert windows(8, 8, 8, 4, wrap_x=True, wrap_y=True) == windows(8, 8, 8, 4)
    views = windows(8, 8, 8, 4, wrap_x=True, wrap_y=True, wraps_itself=False)
    assert [(w.top, w.left, w.height, w.width) for w in views] == [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 8), (4, 4, 8, 8)]
    assert torch.equal(coverage(8, 8, views), torch.full((8, 8), 4.0))


def test_every_target_pass_of_a_tiled_texture_is_rolled(monkeypatch):
    import adcli.engine.features as features

    shifts = []
    original = features.roll
    monkeypatch.setattr(features, "roll", lambda x, shift: shifts.append(shift) or original(x, shift))
    model = adcli.load_model("tiny-flux", device="cpu")
    adcli.texture(model, GRASS, tile="xy", size="64x64", iterations=6)
    assert len(shifts) == 6 and len(set(shifts)) >= 4
    shifts.clear()
    adcli.texture(model, GRASS, size="64x64", iterations=3)
    assert shifts == []  # not tiled: never rolled


SEAM = re.compile(r"seam ratio x ([0-9.]+), y ([0-9.]+)")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-flux", "tiny-sd3"])
@pytest.mark.parametrize("command", [
    ["texture", "-r", GRASS, "--iterations", "8"],
    ["texture", "-r", GRASS, "--mode", "sample", "--steps", "4", "--ad-iterations", "1"],
    ["t2i", "moss", "--style", BRICK, "--steps", "4", "--ad-iterations", "1"],
    ["expand", "-r", GRASS, "--window", "8", "--stride", "4", "--steps", "3", "--ad-iterations", "1"],
])
def test_tiled_outputs_pass_the_seam_check(model, command, tmp_path):
    out = tmp_path / "tiled.png"
    made = run(*command, "--model", model, "--size", "128x64", "--tile", "xy", "-o", out, "--quiet")
    assert made.exit_code == 0, made.output
    preview = run("tile-preview", out)
    assert preview.exit_code == 0 and "no visible seam" in preview.stderr, preview.stderr
    assert all(float(ratio) < 1.5 for ratio in SEAM.search(preview.stderr).groups())


def test_tiling_with_a_controlnet_is_refused_on_a_transformer(tmp_path):
    line = one_line_error(run("t2i", "x", "--style", BRICK, "--control", BRICK, "--controlnet", "tiny", "--tile", "x",
                              "--model", "tiny-flux", "--size", "64x64", "--steps", "1", "-o", tmp_path / "o.png"))
    assert "--tile with a ControlNet needs circular padding, which FLUX.1 has not" in line
