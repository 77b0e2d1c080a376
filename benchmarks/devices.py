"""Small shared pieces of the benchmarks: waiting for and freeing a device, what is installed, PSNR."""

from __future__ import annotations

import gc
import math

import torch


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work (a timer must not stop before it ends); nothing on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_memory(device: torch.device) -> None:
    """Free what the last model left, so that the next row's peak is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def torchao_available() -> bool:
    from importlib.util import find_spec

    return find_spec("torchao") is not None


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1] (inf when equal)."""
    mse = float(((image.double() - reference.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)
