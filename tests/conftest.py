"""Shared fixtures: tiny models, a CLI runner, small images."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tiny models are bound by Python overhead: one thread is as fast and does not fight other processes.
torch.set_num_threads(1)

FAST = ["--model", "tiny", "--size", "64x64", "--iterations", "3", "--quiet"]


@pytest.fixture(scope="session")
def tiny_sd15():
    from adcli.engine.models import load_backend

    return load_backend("tiny", device=torch.device("cpu"), dtype=torch.float32)


@pytest.fixture(scope="session")
def tiny_sdxl():
    from adcli.engine.models import load_backend

    return load_backend("tiny-sdxl", device=torch.device("cpu"), dtype=torch.float32)


@pytest.fixture
def cli():
    """Invoke ``adcli ARGS…`` in-process; returns click's Result (exit_code, stdout, stderr)."""
    from adcli.cli.app import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def make_image(path, size=(48, 40), mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(array, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path)
    return path


@pytest.fixture
def images(tmp_path):
    """A content and a style image in a temporary folder."""
    return make_image(tmp_path / "content.png", seed=1), make_image(tmp_path / "style.png", seed=2)
