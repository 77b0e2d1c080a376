"""A sampling schedule in sigma space (k-diffusion's shape): noise levels as a tensor.

Step ``i`` of a sampler takes the latent from ``sigmas[i]`` to ``sigmas[i + 1]``; the last entry is
where sampling ends (0 for flow matching, the final noise level of a DDPM schedule). Beside each
sigma the schedule keeps the denoiser's own *timestep* input at that level (an integer for DDPM
UNets, a scaled sigma for flow transformers), so that every pass — denoising, the reference
features of the AD step, Algorithm 1's falling timesteps — reads one table.

``sigmas`` stay on the CPU in float64: a step's coefficients are computed from them on the host
with no device round trip. ``timesteps`` live on the model's device: a pass reads them without a
host-to-device copy (each such copy makes the host wait for the GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Point:
    """One schedule point: the noise level ``sigma`` (0-dim, CPU, float64) and the denoiser's
    ``timestep`` there (0-dim, on the model's device)."""

    sigma: torch.Tensor
    timestep: torch.Tensor


@dataclass(frozen=True)
class Schedule:
    """``sigmas`` (N + 1,) falling noise levels; ``timesteps`` (N + 1,) the denoiser's input at each."""

    sigmas: torch.Tensor
    timesteps: torch.Tensor

    def __post_init__(self) -> None:
        if self.sigmas.ndim != 1 or self.sigmas.shape != self.timesteps.shape or len(self.sigmas) < 2:
            raise ValueError(
                f"a schedule needs (N + 1,) sigmas and timesteps, N ≥ 1; got {tuple(self.sigmas.shape)} "
                f"and {tuple(self.timesteps.shape)}"
            )

    @property
    def steps(self) -> int:
        """How many sampling steps the schedule holds (one fewer than its points)."""
        return len(self.sigmas) - 1

    def __getitem__(self, index: int) -> Point:
        return Point(self.sigmas[index], self.timesteps[index])

    def step_timesteps(self) -> torch.Tensor:
        """(N,) the timesteps the N steps start from (Algorithm 1 runs one iteration at each)."""
        return self.timesteps[:-1]

    def starting_at(self, index: int) -> Schedule:
        """The schedule from point ``index`` on (SDEdit: the first ``index`` steps skipped)."""
        return Schedule(self.sigmas[index:], self.timesteps[index:])
