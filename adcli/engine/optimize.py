"""The one Adam loop every optimization command and every AD sampling step uses."""

from __future__ import annotations

from collections.abc import Callable

import torch

from adcli.errors import NumericalError

# The loss is read from the device only every REPORT_EVERY iterations (and at the last), so that
# the loop does not wait on the GPU at every iteration.
REPORT_EVERY = 10
# (iteration 1…N, the loss if it was read at this iteration else None, the latent now) → False to stop
IterationHook = Callable[[int, "float | None", torch.Tensor], "bool | None"]


def optimize_latents(
    latents: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, int], torch.Tensor],
    iterations: int,
    lr: float,
    on_step: IterationHook | None = None,
    report_every: int = REPORT_EVERY,
) -> torch.Tensor:
    """Minimize ``loss_fn(z, i)`` over a fp32 copy ``z`` of ``latents`` with a fresh Adam.

    ``on_step`` runs after each iteration; when it returns False the loop stops and returns ``z``
    as it is. Raises :class:`NumericalError` when the loss stops being finite (checked at each read).
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
        if on_step is not None and on_step(i + 1, value, z.detach()) is False:
            break
    return z.detach()
