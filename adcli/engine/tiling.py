"""Seamless tiling: circular padding in the convolutions, so the picture wraps around.

PyTorch's ``padding_mode="circular"`` wraps both axes at once, so wrapping only x or only y
needs the padding done by hand: while :func:`seamless` is active, each padded ``Conv2d`` gets
a forward pre-hook that pads its input (circular on the wrapped axes, zeros on the others) and
its own padding is set to 0. On exit the hooks are removed and every padding is put back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from adcli.errors import InputError, setting

if TYPE_CHECKING:
    from adcli.engine.backend import Backend

AXES = ("none", "x", "y", "xy")


def _pad_hook(pad_h: int, pad_w: int, wrap_x: bool, wrap_y: bool):
    """What the conv's own zero padding did, with the wrapped axes padded circularly instead."""
    along_x, along_y = (pad_w, pad_w, 0, 0), (0, 0, pad_h, pad_h)
    if wrap_x and wrap_y:
        circular, zeros = (pad_w, pad_w, pad_h, pad_h), None
    else:
        circular, zeros = (along_x, along_y) if wrap_x else (along_y, along_x)

    def hook(module: torch.nn.Module, args: tuple) -> tuple:
        x = F.pad(args[0], circular, mode="circular")  # (B, C, H, W) → (B, C, H + 2·pad_h, W + 2·pad_w)
        if zeros is not None and any(zeros):
            x = F.pad(x, zeros)
        return (x, *args[1:])

    return hook


def _padded_convs(modules: Iterable[torch.nn.Module]) -> list[torch.nn.Conv2d]:
    """Every zero-padded Conv2d with a numeric padding in ``modules`` (each counted once)."""
    seen: dict[int, torch.nn.Conv2d] = {}
    for module in modules:
        for conv in module.modules():
            if (
                isinstance(conv, torch.nn.Conv2d)
                and not isinstance(conv.padding, str)
                and any(conv.padding)
                and conv.padding_mode == "zeros"
            ):
                seen.setdefault(id(conv), conv)
    return list(seen.values())


@contextmanager
def seamless(modules: Iterable[torch.nn.Module], axes: str) -> Iterator[int]:
    """Make ``modules``' convolutions wrap around in ``axes`` (``x``, ``y``, ``xy``; ``none`` does nothing).

    Yields how many convolutions were changed. Everything is restored in ``finally``.
    """
    if axes not in AXES:
        raise InputError(f"{setting('tile')} must be one of {', '.join(AXES)}, got {axes!r}")
    if axes == "none":
        yield 0
        return
    convs = _padded_convs(modules)
    saved = [(conv, conv.padding) for conv in convs]
    handles = []
    try:
        for conv, padding in saved:
            pad_h, pad_w = padding
            handles.append(conv.register_forward_pre_hook(_pad_hook(pad_h, pad_w, "x" in axes, "y" in axes)))
            conv.padding = (0, 0)
        yield len(convs)
    finally:
        for handle in handles:
            handle.remove()
        for conv, padding in saved:
            conv.padding = padding


@contextmanager
def seamless_model(backend: Backend, axes: str, denoiser: bool = True) -> Iterator[None]:
    """``backend``'s denoiser (with ``denoiser``; the convolutions its architecture names) and the
    VAE decoder wrap around in ``axes`` (``none``: unchanged). The encoder is left alone:
    references are not periodic."""
    if axes == "none":
        yield
        return
    modules = (backend.arch.circular_modules(backend) if denoiser else []) + [backend.vae.decoder, backend.vae.post_quant_conv]
    with seamless(modules, axes):
        yield


def seam_steps(pixels: torch.Tensor, axis: str, period: int = 8) -> tuple[float, torch.Tensor]:
    """The step across the wrap-around seam, and the comparable steps inside the picture.

    pixels: (C, H, W). Rolled by half its width (``axis="x"``) or height (``"y"``), the seam sits
    in the middle. A step is the mean absolute difference between neighbouring columns (rows).
    Comparable steps are those at the seam's offset modulo ``period``: a VAE paints 8-pixel cells,
    and steps across cell edges are larger than steps inside a cell (all steps if too few).
    """
    dim = {"x": -1, "y": -2}[axis]
    size = pixels.shape[dim]
    rolled = torch.roll(pixels.float(), shifts=size // 2, dims=dim).movedim(dim, -1)
    steps = (rolled[..., 1:] - rolled[..., :-1]).abs().reshape(-1, size - 1).mean(0)  # (size - 1,)
    seam = size // 2 - 1
    others = [k for k in range(size - 1) if k != seam and (k - seam) % period == 0]
    if len(others) < 2:
        others = [k for k in range(size - 1) if k != seam]
    return float(steps[seam]), steps[others]


def seam_ratio(pixels: torch.Tensor, axis: str, period: int = 8) -> float:
    """How visible the wrap-around seam is: its step over the mean comparable step (see
    :func:`seam_steps`). About 1 or less: no visible seam; well above 1: a seam."""
    seam, others = seam_steps(pixels, axis, period)
    return seam / max(float(others.mean()), 1e-8)


def repeat_2x2(pixels: torch.Tensor) -> torch.Tensor:
    """(C, H, W) → (C, 2H, 2W): the picture tiled twice each way, to look for seams."""
    return pixels.repeat(1, 2, 2)
