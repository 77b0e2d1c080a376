"""Benchmark tests run the tiny models on one thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny models are dispatch-bound: a second thread only waits on a shared, busy core, and the
    literal loops are compared with the engine at one thread's float sums."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
