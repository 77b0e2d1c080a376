"""The one Adam loop every optimization command and every AD sampling step uses."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from adcli.errors import NumericalError, setting

# The losses are read from the device only every REPORT_EVERY iterations (and at the last), so
# that the loop does not wait on the GPU at every iteration.
REPORT_EVERY = 10
# (iteration 1…N, each item's loss if they were read at this iteration else None, the latent now) → False to stop
IterationHook = Callable[[int, "list[float] | None", torch.Tensor], "bool | None"]


def optimize_latents(
    latents: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, int], torch.Tensor],
    iterations: int,
    lr: float,
    on_step: IterationHook | None = None,
    report_every: int = REPORT_EVERY,
) -> torch.Tensor:
    """Minimize ``loss_fn(z, i)`` over a fp32 copy ``z`` of ``latents`` (B, C, h, w) with a fresh Adam.

    ``loss_fn`` gives each item's loss, (B,): their sum is minimized, so every item gets the
    gradient it would get alone, and each is reported as its own. ``on_step`` runs after each
    iteration; when it returns False the loop stops and returns ``z`` as it is. Raises
    :class:`NumericalError` when a loss stops being finite (checked at each read).
    """
    z = latents.detach().float().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    for i in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        losses = loss_fn(z, i)
        losses.sum().backward()
        optimizer.step()
        values = None
        if (i + 1) % report_every == 0 or i + 1 == iterations:
            values = losses.detach().reshape(-1).tolist()  # one read-back for the whole batch
            if not all(math.isfinite(value) for value in values):
                bad = next(value for value in values if not math.isfinite(value))
                raise NumericalError(
                    f"the loss became {bad} at iteration {i + 1}: try a smaller {setting('lr')} "
                    f"or {setting('dtype')} fp32"
                )
        if on_step is not None and on_step(i + 1, values, z.detach()) is False:
            break
    return z.detach()
