"""Each image of a batch reports its own loss: the engine's callback carries ``losses``, one value
per item in item order, each the value that item gets when run alone (``loss`` is their mean)."""

from __future__ import annotations

import pytest
import torch

from adcli.engine.config import SamplingConfig
from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.sampler import distill_by_sampling, text_denoiser

LAYERS = [-3, -2, -1]


def _latents(seed: int, count: int = 1) -> torch.Tensor:
    return torch.randn(count, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def _reports(backend, contents: torch.Tensor, iterations: int = 4) -> list[dict]:
    reports = []
    guide = Guide(reference=_latents(1), content=contents, content_weight=0.25)
    distill_by_optimization(
        backend, contents, guide, layers=LAYERS, iterations=iterations, lr=0.05, report_every=1,
        callback=lambda info: reports.append({"loss": info["loss"], "losses": info["losses"]}),
    )
    return reports


def test_two_contents_batched_report_their_own_losses_equal_to_alone(tiny_sd15):
    """Two different contents: their losses differ at every iteration, and each equals the loss
    the same content reports when it is optimized alone (not the batch mean)."""
    first, second = _latents(2), _latents(3) * 2
    batched = _reports(tiny_sd15, torch.cat([first, second]))
    alone = [_reports(tiny_sd15, first), _reports(tiny_sd15, second)]
    assert len(batched) == 4
    for iteration, report in enumerate(batched):
        own = [alone[0][iteration]["losses"][0], alone[1][iteration]["losses"][0]]
        assert len(report["losses"]) == 2 and abs(report["losses"][0] - report["losses"][1]) > 1e-3
        assert report["losses"] == pytest.approx(own, rel=1e-4)
        assert report["loss"] == pytest.approx(sum(report["losses"]) / 2, rel=1e-6)


def test_one_image_reports_its_loss_as_a_one_item_list(tiny_sd15):
    reports = _reports(tiny_sd15, _latents(2), iterations=2)
    assert all(r["losses"] == [r["loss"]] and r["loss"] > 0 for r in reports)


def test_losses_repeat_between_reads_and_are_none_before_the_first(tiny_sd15):
    reports = []
    distill_by_optimization(
        tiny_sd15, _latents(2, 2), Guide(reference=_latents(1)), layers=LAYERS, iterations=3, lr=0.05, report_every=2,
        callback=lambda info: reports.append(info["losses"]),
    )
    assert reports[0] is None and len(reports[1]) == 2 and reports[2] != reports[1] and len(reports[2]) == 2


def test_sampling_reports_the_image_loss_as_losses(tiny_sd15):
    reports = []
    distill_by_sampling(
        tiny_sd15, text_denoiser(tiny_sd15, tiny_sd15.encode_prompts([""])), Guide(reference=_latents(1)),
        SamplingConfig(steps=2, ad_iterations=2, lr=0.05, layers=LAYERS), size=(64, 64),
        generator=torch.Generator().manual_seed(0), callback=lambda info: reports.append(info),
    )
    read = [r for r in reports if r["loss"] is not None]
    assert read and all(r["losses"] == [r["loss"]] for r in read)
