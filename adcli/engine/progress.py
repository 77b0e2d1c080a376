"""How every engine loop reports progress and is asked to stop: one callback taking one dict.

The callback gets ``{"step", "total", "loss", "losses", "latents", ...}`` after each iteration
(optimization) or each AD iteration (sampling); returning ``False`` stops the loop, which then
returns the latents it last reported. ``losses`` holds one value per item of the batch, in item
order, each item's own; ``loss`` is their mean. Both are the latest values read back from the
device: loops read them only now and then, because each read makes the host wait for the GPU
(None until the first read).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

ProgressCallback = Callable[[dict[str, Any]], "bool | None"]


class Progress:
    """One loop's reports to a :data:`ProgressCallback`; remembers the latest losses and a stop."""

    def __init__(self, callback: ProgressCallback | None, total: int):
        self.callback = callback
        self.total = total
        self.losses: list[float] | None = None
        self.stopped = False

    @property
    def loss(self) -> float | None:
        """The mean of the latest per-item losses (None before the first read)."""
        return None if self.losses is None else sum(self.losses) / len(self.losses)

    def remember(self, losses: Sequence[float] | float | None) -> None:
        """Keep freshly read losses (one per item, or one number for the whole run); None keeps the latest."""
        if losses is not None:
            self.losses = [float(losses)] if isinstance(losses, (int, float)) else [float(x) for x in losses]

    def report(self, step: int, latents: torch.Tensor | None, losses: Sequence[float] | float | None = None, **extra: Any) -> bool:
        """Tell the callback; ``losses`` None keeps the latest. True while the loop should go on."""
        self.remember(losses)
        if self.callback is not None and not self.stopped:
            detached = None if latents is None else latents.detach()
            info = {"step": step, "total": self.total, "loss": self.loss,
                    "losses": None if self.losses is None else list(self.losses), "latents": detached, **extra}
            self.stopped = self.callback(info) is False
        return not self.stopped
