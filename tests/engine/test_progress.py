"""The progress callback every engine loop takes: one dict per iteration, False stops the run."""

from __future__ import annotations

import torch

from adcli.engine.config import SamplingConfig
from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.optimize import REPORT_EVERY
from adcli.engine.sampler import distill_by_sampling, text_denoiser
from adcli.engine.vae_finetune import finetune_decoder
from adcli.engine.tiny import tiny_vae

LAYERS = [-2, -1]


def _latents(seed: int) -> torch.Tensor:
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def _sampling(backend, config: SamplingConfig, callback=None) -> torch.Tensor:
    return distill_by_sampling(
        backend, text_denoiser(backend, backend.encode_prompts([""])), Guide(_latents(1)), config,
        size=(64, 64), generator=torch.Generator().manual_seed(2), callback=callback,
    )


def test_optimization_reports_every_iteration_and_reads_the_loss_every_report_every(tiny_sd15):
    reports = []
    result = distill_by_optimization(
        tiny_sd15, _latents(2), Guide(_latents(1)), layers=LAYERS, iterations=12, lr=0.05, callback=reports.append
    )
    assert [r["step"] for r in reports] == list(range(1, 13)) and {r["total"] for r in reports} == {12}
    losses = [r["loss"] for r in reports]
    assert losses[: REPORT_EVERY - 1] == [None] * (REPORT_EVERY - 1)  # nothing read yet
    assert losses[REPORT_EVERY - 1] > 0 and losses[REPORT_EVERY] == losses[REPORT_EVERY - 1]  # the latest read
    assert losses[-1] != losses[REPORT_EVERY - 1]  # read again at the last iteration
    torch.testing.assert_close(reports[-1]["latents"], result)
    assert not reports[-1]["latents"].requires_grad


def test_optimization_stops_when_the_callback_returns_false(tiny_sd15):
    reports = []
    stopped = distill_by_optimization(
        tiny_sd15, _latents(2), Guide(_latents(1)), layers=LAYERS, iterations=12, lr=0.05,
        callback=lambda info: reports.append(info) or info["step"] < 3,
    )
    assert [r["step"] for r in reports] == [1, 2, 3]
    three = distill_by_optimization(tiny_sd15, _latents(2), Guide(_latents(1)), layers=LAYERS, iterations=12, lr=0.05,
                                    callback=lambda info: info["step"] < 3)
    torch.testing.assert_close(stopped, reports[-1]["latents"])
    torch.testing.assert_close(stopped, three)


def test_sampling_reports_each_ad_iteration_with_one_loss_read_per_step(tiny_sd15):
    reports = []
    result = _sampling(tiny_sd15, SamplingConfig(3, 2, 0.05, LAYERS), reports.append)
    assert [(r["step"], r["ad_iteration"]) for r in reports] == [(s, j) for s in (1, 2, 3) for j in (1, 2)]
    assert {(r["total"], r["ad_iterations"]) for r in reports} == {(3, 2)}
    losses = [r["loss"] for r in reports]
    assert losses[0] is None and losses[1] > 0 and losses[2] == losses[1]  # read after a step's last iteration
    torch.testing.assert_close(reports[-1]["latents"], result)  # ad_iteration == K: the step's final latents


def test_sampling_without_ad_reports_once_per_step(tiny_sd15):
    reports = []
    result = _sampling(tiny_sd15, SamplingConfig(3, 0, 0.05, LAYERS), reports.append)
    assert [(r["step"], r["ad_iteration"], r["ad_iterations"], r["loss"]) for r in reports] == [
        (s, 0, 0, None) for s in (1, 2, 3)
    ]
    torch.testing.assert_close(reports[-1]["latents"], result)


def test_sampling_stops_mid_step_and_returns_the_reported_latents(tiny_sd15):
    reports = []

    def stop(info):
        reports.append(info)
        return (info["step"], info["ad_iteration"]) != (2, 1)

    result = _sampling(tiny_sd15, SamplingConfig(3, 2, 0.05, LAYERS), stop)
    assert [(r["step"], r["ad_iteration"]) for r in reports] == [(1, 1), (1, 2), (2, 1)]
    torch.testing.assert_close(result, reports[-1]["latents"])


def test_vae_fine_tuning_stops_when_asked():
    torch.manual_seed(0)
    vae = tiny_vae().eval().requires_grad_(False)
    images = [torch.rand(1, 3, 64, 64) * 2 - 1]
    reports = []
    result = finetune_decoder(vae, images, steps=10, lr=1e-3, crop_size=32, batch_size=1, seed=0,
                              callback=lambda info: reports.append(info) or info["step"] < 4)
    assert [r["step"] for r in reports] == [1, 2, 3, 4] and result.steps == 4
    assert all(r["latents"] is None and r["total"] == 10 for r in reports)



def test_the_terminal_shows_step_and_ad_iteration():
    """What the progress bar's detail column shows for sampling, expansion and optimization."""
    from adcli.cli.console import step_detail

    assert step_detail({"step": 3, "total": 50, "loss": 0.5, "ad_iteration": 2, "ad_iterations": 3}) == "step 3/50 · AD iteration 2/3"
    assert step_detail({"step": 4, "total": 50, "ad_iteration": 1, "ad_iterations": 3, "windows_done": 4, "windows": 8}) == (
        "step 4/50 · AD iteration 1/3 · windows 4/8"
    )
    assert step_detail({"step": 7, "total": 200, "loss": None}) == ""
