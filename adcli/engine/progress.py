"""How every engine loop reports progress and is asked to stop: one callback taking one dict.

The callback gets ``{"step", "total", "loss", "latents", ...}`` after each iteration (optimization)
or each AD iteration (sampling); returning ``False`` stops the loop, which then returns the
latents it last reported. ``loss`` is the latest value read back from the device: loops read it
only now and then, because each read makes the host wait for the GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

ProgressCallback = Callable[[dict[str, Any]], "bool | None"]


class Progress:
    """One loop's reports to a :data:`ProgressCallback`; remembers the latest loss and a stop."""

    def __init__(self, callback: ProgressCallback | None, total: int):
        self.callback = callback
        self.total = total
        self.loss: float | None = None
        self.stopped = False

    def report(self, step: int, latents: torch.Tensor | None, loss: float | None = None, **extra: Any) -> bool:
        """Tell the callback; ``loss`` None keeps the latest one. True while the loop should go on."""
        if loss is not None:
            self.loss = loss
        if self.callback is not None and not self.stopped:
            detached = None if latents is None else latents.detach()
            info = {"step": step, "total": self.total, "loss": self.loss, "latents": detached, **extra}
            self.stopped = self.callback(info) is False
        return not self.stopped
