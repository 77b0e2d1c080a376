"""MultiDiffusion (Bar-Tal et al. 2023) around the AD-guided sampler: any output size.

The latent is covered by overlapping windows the size the UNet was trained on (64×64 latents for
SD1.5). Each step, every window is denoised and AD-guided on its own, and overlapping results are
averaged. Since a DDIM step is linear in the predicted noise, averaging the noise per pixel and
stepping the whole latent once is the same as stepping each window and averaging the results.
With wrap-around windows the result tiles seamlessly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from adcli.engine.distill import Guide
from adcli.engine.guidance import ADGuidance
from adcli.engine.models import Backend
from adcli.engine.sampler import make_scheduler, sample, text_denoiser


@dataclass(frozen=True)
class Window:
    """A crop of the latent: rows ``top..top+height`` and columns ``left..left+width``, modulo the
    latent's size when the window wraps around an edge."""

    top: int
    left: int
    height: int
    width: int


def _starts(extent: int, size: int, stride: int, wrap: bool) -> tuple[list[int], int]:
    """Window starts along one axis and the window's length there."""
    span = min(size, extent)
    if wrap and extent > size:
        return list(range(0, extent, stride)), span
    last = extent - span
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)  # the last window sits flush with the far edge
    return starts, span


def windows(height: int, width: int, size: int, stride: int, wrap_x: bool = False, wrap_y: bool = False) -> list[Window]:
    """Windows of ``size``×``size`` latents every ``stride`` latents that cover a ``height``×``width``
    latent completely; an axis shorter than ``size`` gets one window of its full length."""
    if size < 1 or stride < 1:
        raise ValueError(f"window size and stride must be positive, got {size} and {stride}")
    rows, window_height = _starts(height, size, stride, wrap_y)
    cols, window_width = _starts(width, size, stride, wrap_x)
    return [Window(top, left, window_height, window_width) for top in rows for left in cols]


def _indices(window: Window, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = (torch.arange(window.height, device=device) + window.top) % height
    cols = (torch.arange(window.width, device=device) + window.left) % width
    return rows, cols


def crop(latents: torch.Tensor, window: Window) -> torch.Tensor:
    """(B, C, H, W) → (B, C, h, w), wrapping around the edges if the window does."""
    rows, cols = _indices(window, latents.shape[-2], latents.shape[-1], latents.device)
    return latents.index_select(-2, rows).index_select(-1, cols)


def coverage(height: int, width: int, tiles: Sequence[Window]) -> torch.Tensor:
    """How many windows cover each latent pixel, (H, W)."""
    counts = torch.zeros(height, width)
    for window in tiles:
        rows, cols = _indices(window, height, width, counts.device)
        counts[rows.unsqueeze(1), cols.unsqueeze(0)] += 1
    return counts


class WindowAverager:
    """Runs a function over batches of windows of a latent and averages the overlapping results."""

    def __init__(self, tiles: Sequence[Window], batch: int):
        self.tiles = list(tiles)
        self.batch = max(1, batch)

    @property
    def batches(self) -> int:
        return -(-len(self.tiles) // self.batch)

    def _groups(self) -> Iterator[list[Window]]:
        for start in range(0, len(self.tiles), self.batch):
            yield self.tiles[start : start + self.batch]

    def __call__(
        self, latents: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], on_batch: Callable[[int], None] | None = None
    ) -> torch.Tensor:
        """``fn`` maps a batch of crops (N·B, C, h, w) to results of the same shape."""
        batch, channels, height, width = latents.shape
        total = torch.zeros_like(latents, dtype=torch.float32)
        counts = torch.zeros(height, width, device=latents.device)
        for number, group in enumerate(self._groups()):
            # windows of one group share a shape unless they sit at a flush edge; run those apart
            for shape_group in _same_shape(group):
                crops = torch.cat([crop(latents, w) for w in shape_group])  # (N·B, C, h, w)
                results = fn(crops).float().split(batch)
                for window, result in zip(shape_group, results, strict=True):
                    rows, cols = _indices(window, height, width, latents.device)
                    # a window never covers a pixel twice, so indexed += accumulates correctly
                    total[..., rows.unsqueeze(1), cols.unsqueeze(0)] += result
                    counts[rows.unsqueeze(1), cols.unsqueeze(0)] += 1
            if on_batch is not None:
                on_batch(number)
        return total / counts


def _same_shape(group: list[Window]) -> list[list[Window]]:
    shapes: dict[tuple[int, int], list[Window]] = {}
    for window in group:
        shapes.setdefault((window.height, window.width), []).append(window)
    return list(shapes.values())


class WindowedGuidance:
    """The AD hook for MultiDiffusion: the reference features of a step are computed once
    (:meth:`ADGuidance.prepare`) and shared by every window and every AD iteration."""

    def __init__(self, guidance: ADGuidance, averager: WindowAverager, on_batch: Callable[[int, int], None] | None = None):
        self.guidance = guidance
        self.averager = averager
        self.on_batch = on_batch

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor, index: int) -> torch.Tensor:
        report = None
        if self.on_batch is not None:
            report = lambda number: self.on_batch(index, number)  # noqa: E731
        with self.guidance.installed():
            step = self.guidance.prepare(timestep)
            return self.averager(latents, lambda crops: self.guidance.apply(crops, step), report)


def expand_by_sampling(
    backend: Backend,
    guide: Guide,
    *,
    size: tuple[int, int],
    generator: torch.Generator,
    layers: Sequence[int],
    steps: int,
    iterations: int,
    lr: float,
    adain: bool,
    window: int,
    stride: int,
    window_batch: int,
    wrap_x: bool = False,
    wrap_y: bool = False,
    on_step: Callable[..., None] | None = None,
) -> torch.Tensor:
    """Texture expansion: AD-guided DDIM sampling (no prompt, no CFG) of a ``size`` = (width, height)
    latent through MultiDiffusion windows of ``window`` latents every ``stride``.

    Progress counts window batches: each step denoises every batch, then AD-guides every batch;
    ``on_step(done, total, loss, detail)`` gets a fourth argument naming the step and window batch.
    """
    scheduler = make_scheduler(backend, steps)
    latents = backend.latent_noise(size, generator) * scheduler.init_noise_sigma
    height, width = latents.shape[-2:]
    averager = WindowAverager(windows(height, width, window, stride, wrap_x, wrap_y), window_batch)

    guidance = None
    if iterations > 0:
        guidance = ADGuidance(
            backend, guide.to(backend.device), scheduler, generator, layers=layers, iterations=iterations, lr=lr, adain=adain
        )
    per_step = averager.batches * (2 if guidance is not None else 1)
    done = 0

    def tick(*_: int) -> None:
        nonlocal done
        done += 1
        if on_step is not None:
            step, batch = divmod(done - 1, per_step)
            phase = "denoise" if batch < averager.batches else "AD"
            detail = f"step {step + 1}/{steps} · {phase} windows {batch % averager.batches + 1}/{averager.batches}"
            on_step(done, steps * per_step, None if guidance is None else guidance.last_loss, detail)

    text_eps = text_denoiser(backend, backend.encode_prompts([""]))

    def denoise(latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return averager(latents, lambda crops: text_eps(crops, t), tick)

    hook = None if guidance is None else WindowedGuidance(guidance, averager, tick)
    return sample(denoise, latents, scheduler, scheduler.timesteps, hook)
