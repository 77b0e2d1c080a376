"""MultiDiffusion (Bar-Tal et al. 2023) around the AD-guided sampler: any output size.

The latent is covered by overlapping windows the size the denoiser was trained on (64×64 latents
for SD1.5). Each step follows the paper's reference implementation: every window is cropped from
x_t, gets its own denoised estimate and sampler step, then its AD iterations on that stepped window;
only then are all windows averaged into x_{t−1} (MultiDiffusion's fusion, after the guidance).
Averaging earlier — the noise, or the stepped latent before AD — is not the same: where windows
overlap, a window's own step differs from the crop of the average, and AD then acts on another
latent. The step is the sampler's pure step function (DDIM, Euler), taken by every window from
the same schedule point: no scheduler object is stepped per window (diffusers' flow-matching
scheduler would advance its step index on each call). What keeps it fast: the reference features
of a step are computed once and shared by every window and AD iteration, and windows run in
batches. With wrap-around windows the result tiles seamlessly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from adcli.engine.backend import Backend
from adcli.engine.config import ExpansionConfig
from adcli.engine.features import Guide
from adcli.engine.guidance import ADGuidance
from adcli.engine.progress import Progress, ProgressCallback
from adcli.engine.sampler import require_finite, text_denoiser
from adcli.errors import InputError, setting


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
        raise InputError(f"{setting('window')} and {setting('stride')} must be positive, got {size} and {stride}")
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


def window_batches(tiles: Sequence[Window], batch: int) -> list[list[Window]]:
    """The windows in groups of at most ``batch`` that share a shape (one UNet batch each)."""
    tiles, batch = list(tiles), max(1, batch)
    groups = []
    for start in range(0, len(tiles), batch):
        shapes: dict[tuple[int, int], list[Window]] = {}
        for window in tiles[start : start + batch]:
            shapes.setdefault((window.height, window.width), []).append(window)
        groups += shapes.values()
    return groups


def crops(latents: torch.Tensor, group: Sequence[Window]) -> torch.Tensor:
    """(B, C, H, W) → the windows' crops (N·B, C, h, w), window-major."""
    return torch.cat([crop(latents, window) for window in group])


class WindowAverage:
    """Sums windows' results into a latent of ``like``'s shape; :meth:`result` is their per-pixel mean."""

    def __init__(self, like: torch.Tensor):
        self.batch, _, self.height, self.width = like.shape
        self.total = torch.zeros_like(like, dtype=torch.float32)
        self.counts = torch.zeros(self.height, self.width, device=like.device)

    def add(self, group: Sequence[Window], results: torch.Tensor) -> None:
        """``results`` (N·B, C, h, w): one item per window of ``group`` and latent, as :func:`crops` gives."""
        for window, result in zip(group, results.float().split(self.batch), strict=True):
            rows, cols = _indices(window, self.height, self.width, self.total.device)
            # a window never covers a pixel twice, so indexed += accumulates correctly
            self.total[..., rows.unsqueeze(1), cols.unsqueeze(0)] += result
            self.counts[rows.unsqueeze(1), cols.unsqueeze(0)] += 1

    def result(self) -> torch.Tensor:
        return self.total / self.counts


def expand_by_sampling(
    backend: Backend,
    guide: Guide,
    config: ExpansionConfig,
    *,
    size: tuple[int, int],
    generator: torch.Generator,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """Texture expansion: AD-guided sampling (no prompt, no CFG) of a ``size`` = (width, height)
    latent through MultiDiffusion windows (``config.window`` latents every ``config.stride``).

    ``callback`` gets ``{step, total, loss, losses, latents, ad_iteration, ad_iterations,
    windows_done, windows}`` after each AD iteration of each window batch (once per batch without
    AD), where ``windows_done`` counts the step's windows up to the current batch's last and the
    loss is the batch's mean over its windows (one image: ``losses`` holds that one value). Until a
    step's last report ``latents`` is the step's start x_t; its last (``windows_done == windows``
    and ``ad_iteration == ad_iterations``) carries x_{t−1}. Returning False stops the run and
    returns the latents of that report.
    """
    z = backend.latent_noise(size, generator).float()  # the schedule's start is the noise itself
    height, width = z.shape[-2:]
    schedule = backend.schedule(config.steps, (config.window, config.window))
    step = backend.prediction.step
    tiles = windows(height, width, config.window, config.stride, config.wrap_x, config.wrap_y)
    groups = window_batches(tiles, config.window_batch)
    guidance = None
    if config.ad_iterations > 0:
        guidance = ADGuidance(backend, guide.to(backend.device), generator, config)
    denoise = text_denoiser(backend, backend.encode_prompts([""]))
    progress = Progress(callback, config.steps)
    iterations = config.ad_iterations

    for index in range(schedule.steps):
        here, there = schedule[index], schedule[index + 1]
        reference = None
        if guidance is not None:
            with guidance.installed():
                reference = guidance.prepare(there)  # once per step, for every window
        fused, done = WindowAverage(z), 0
        for number, group in enumerate(groups):
            done += len(group)
            last_batch = number == len(groups) - 1

            def report(ad_iteration: int, losses: list[float] | None, _: torch.Tensor) -> bool:
                image_loss = None if losses is None else [sum(losses) / len(losses)]  # one image: its windows' mean
                if last_batch and ad_iteration == iterations:
                    progress.remember(image_loss)
                    return True  # reported below, with the fused x_{t−1}
                return progress.report(index + 1, z, image_loss, ad_iteration=ad_iteration, ad_iterations=iterations,
                                       windows_done=done, windows=len(tiles))

            x = crops(z, group)  # (N·B, C, h, w) at σ
            with torch.no_grad():
                x = step(x, denoise(x, here), here.sigma, there.sigma)  # each window's own step
            if guidance is not None:
                with guidance.installed():
                    x = guidance.apply(x, reference, report)  # AD on that window's own stepped latent
            elif not last_batch:
                report(0, None, x)
            if progress.stopped:
                return z
            fused.add(group, x)
        z = fused.result()
        require_finite(z, index + 1, config.steps, here)
        if not progress.report(index + 1, z, ad_iteration=iterations, ad_iterations=iterations,
                               windows_done=len(tiles), windows=len(tiles)):
            return z
    return z
