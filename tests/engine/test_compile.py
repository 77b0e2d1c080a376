"""--compile: the compiled UNet gives the eager losses, and restoring brings back the eager UNet.

torch.compile's "eager" backend is used: it traces exactly what inductor would compile (the
capture processors inside the UNet graph, with and without gradient) without generating code.
"""

from __future__ import annotations

import pytest
import torch

from adcli.engine.compile import compiled_denoiser, is_compiled
from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import Guide
from adcli.engine.models import load_backend


@pytest.mark.slow
def test_compiled_denoiser_gives_the_eager_losses():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        backend = load_backend("tiny", device=torch.device("cpu"), dtype=torch.float32)
        noise = [torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(s)) for s in (1, 2, 3)]
        style, content, init = noise[0], noise[1], noise[1] + 0.3 * noise[2]
        guide = Guide(style, content, 0.25)

        def losses() -> list[float]:
            seen = []
            distill_by_optimization(
                backend, init, guide, layers=(-6, -5, -4, -3, -2, -1), iterations=2, lr=0.05,
                feature_chunk=2, report_every=1, callback=lambda info: seen.append(info["loss"]),
            )
            return seen

        eager = losses()
        torch._dynamo.utils.counters.clear()
        with compiled_denoiser(backend.denoiser, backend="eager"):
            assert is_compiled(backend.denoiser)
            compiled = losses()
        assert not torch._dynamo.utils.counters["graph_break"], "the UNet should trace into whole graphs"
        assert not is_compiled(backend.denoiser) and backend.denoiser._compiled_call_impl is None
        assert compiled == pytest.approx(eager, rel=1e-5)
    finally:
        torch.set_num_threads(threads)
