"""Style transfer's own start (Algorithm 1 from the content latent itself), against the literal
Algorithm 1 of benchmarks/baseline.py: separate UNet passes, the content loss on every iteration.

At the first iteration the target *is* the content, so the literal content term is exactly 0 with
a zero gradient; the engine leaves that one term out (its batched passes would turn the 0 into
float noise) and must keep it on every later iteration."""

from __future__ import annotations

import pytest
import torch

from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from benchmarks.baseline import literal_algorithm1

LAYERS = (-6, -5, -4, -3, -2, -1)
ITERATIONS = 4


def latents(seed: int) -> torch.Tensor:
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def engine(backend, content, style, weight):
    losses = []
    z = distill_by_optimization(
        backend, content, Guide(style, content, weight), layers=LAYERS, iterations=ITERATIONS, lr=0.05,
        report_every=1, callback=lambda info: losses.append(info["loss"]),
    )
    return z, losses


@pytest.mark.parametrize("fixture", ["tiny_sd15", "tiny_sdxl"])
def test_from_the_content_latent_the_engine_is_the_literal_algorithm(request, fixture):
    backend = request.getfixturevalue(fixture)
    style, content = latents(1), latents(2)
    expected, literal = literal_algorithm1(
        backend, content, style, content, layers=LAYERS, iterations=ITERATIONS, lr=0.05, content_weight=0.25
    )
    actual, losses = engine(backend, content, style, 0.25)
    assert losses == pytest.approx(literal, rel=1e-5)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    # the content term is in the later losses: without it the literal losses are not reached
    _, without = literal_algorithm1(backend, content, style, None, layers=LAYERS, iterations=ITERATIONS, lr=0.05, content_weight=0)
    assert without[0] == pytest.approx(literal[0], rel=1e-5)  # iteration 1: the content term is 0
    assert all(abs(a - b) > 1e-4 * abs(b) for a, b in zip(without[1:], literal[1:]))
