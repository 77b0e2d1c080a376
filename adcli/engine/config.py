"""The settings of the sampling loops, one frozen object each instead of a dozen keywords.

:func:`~adcli.engine.sampler.distill_by_sampling`, :func:`~adcli.engine.multidiffusion.expand_by_sampling`
and the literal baselines in ``benchmarks/baseline.py`` all take one of these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from adcli.errors import InputError, setting


@dataclass(frozen=True)
class SamplingConfig:
    """AD-guided DDIM sampling (Alg. 2): ``steps`` DDIM steps, each followed by ``ad_iterations``
    Adam iterations at ``lr`` on the AD loss of the self-attention ``layers`` (indices, negative
    from the end); AdaIN to the noised reference first when ``adain``. ``strength`` < 1 starts
    from a layout latent part-way (SDEdit) and is ignored without one."""

    steps: int
    ad_iterations: int
    lr: float
    layers: Sequence[int]
    adain: bool = False
    strength: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))  # frozen all the way down
        if self.steps < 1 or self.ad_iterations < 0:
            raise InputError(
                f"{setting('steps')} must be at least 1 and {setting('ad_iterations')} at least 0, "
                f"got {self.steps} and {self.ad_iterations}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"{setting('lr')} must be a positive number, got {self.lr}")
        if not 0 < self.strength <= 1:
            raise InputError(f"{setting('strength')} must be greater than 0 and at most 1, got {self.strength}")


@dataclass(frozen=True)
class ExpansionConfig(SamplingConfig):
    """Sampling through MultiDiffusion windows of ``window`` latents every ``stride`` latents,
    ``window_batch`` windows per UNet batch; ``wrap_x``/``wrap_y`` let windows cross the edges
    (a seamless tile)."""

    window: int = 64
    stride: int = 8
    window_batch: int = 1
    wrap_x: bool = False
    wrap_y: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 1 or not 1 <= self.stride <= self.window or self.window_batch < 1:
            raise InputError(
                f"need {setting('window')} ≥ 1, 1 ≤ {setting('stride')} ≤ {setting('window')} and "
                f"{setting('window_batch')} ≥ 1, got {self.window}, {self.stride}, {self.window_batch}"
            )


def sdedit_start(steps: int, strength: float) -> int:
    """SDEdit: the index of the first of ``steps`` timesteps to run, so that ``strength`` of them run.

    Strength 1 starts from pure noise (index 0); strength 0.6 skips the first 40 % of the steps
    and starts from the layout latent noised to the timestep there.
    """
    run = min(max(int(steps * strength), 1), steps)
    return steps - run
