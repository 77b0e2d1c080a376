"""The one Adam loop every optimization command and every AD sampling step uses."""

from __future__ import annotations

from collections.abc import Callable

import torch

from adcli.errors import NumericalError

# (step, total, loss or None). The loss is read from the device only every REPORT_EVERY steps,
# so that the loop does not wait on the GPU at every iteration.
StepCallback = Callable[[int, int, float | None], None]
REPORT_EVERY = 10


def optimize_latents(
    latents: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, int], torch.Tensor],
    iterations: int,
    lr: float,
    on_step: StepCallback | None = None,
    report_every: int = REPORT_EVERY,
) -> torch.Tensor:
    """Minimize ``loss_fn(z, i)`` over a fp32 copy ``z`` of ``latents`` with a fresh Adam.

    Raises :class:`NumericalError` when the loss stops being finite (checked at each report).
    """
    z = latents.detach().float().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    for i in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(z, i)
        loss.backward()
        optimizer.step()
        value = None
        if (i + 1) % report_every == 0 or i + 1 == iterations:
            value = float(loss.detach())
            if not torch.isfinite(torch.tensor(value)):
                raise NumericalError(
                    f"the loss became {value} at iteration {i + 1}: try a smaller --lr or --dtype fp32"
                )
        if on_step is not None:
            on_step(i + 1, iterations, value)
    return z.detach()
