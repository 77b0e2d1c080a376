"""Every command's output on the tiny SD1.5 and SDXL models equals what was recorded before the
engine was reorganized (``tests/golden/``): the architecture seam must leave SD1.5 and SDXL as
they were. Float noise is allowed (a refactor may reorder sums), a real change is not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.golden.cases import cases, golden_path, load

# Grey levels (0–255): the largest difference at any pixel, and the mean over all of them. Runs on
# this CPU are bit-identical; the margin is for reordered float sums amplified by Adam over a run.
MAX_LEVELS = 3
MEAN_LEVELS = 0.25

CASES = cases()
# `make quick` checks each architecture's t2i, style transfer and expansion; `make test` every case.
QUICK = {f"{arch}_{command}" for arch in ("sd15", "sdxl", "flux", "sd3") for command in ("t2i", "style_transfer", "expand")}
_models: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the images were recorded: thread count changes float sums
    yield
    torch.set_num_threads(threads)
    _models.clear()


@pytest.mark.parametrize(
    "case", [pytest.param(case, marks=() if case in QUICK else pytest.mark.slow) for case in sorted(CASES)]
)
def test_output_unchanged(case):
    model_name, make = CASES[case]
    model = _models.setdefault(model_name, load(model_name))
    made = np.asarray(make(model).convert("RGB"), dtype=np.int16)
    recorded = np.asarray(Image.open(golden_path(case)).convert("RGB"), dtype=np.int16)
    assert made.shape == recorded.shape, f"{case}: size {made.shape} != recorded {recorded.shape}"
    difference = np.abs(made - recorded)
    assert difference.max() <= MAX_LEVELS and difference.mean() <= MEAN_LEVELS, (
        f"{case}: differs from the recorded image by up to {difference.max()} levels "
        f"(mean {difference.mean():.3f}); rerun `python -m tests.golden.record {case}` only if the change is meant"
    )
