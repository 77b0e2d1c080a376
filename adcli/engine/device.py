"""Device and precision choices."""

from __future__ import annotations

import torch

from adcli.errors import DeviceError, setting

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; an explicit CUDA request without CUDA is an error."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"{setting('device')} {name} asked for CUDA, but no CUDA GPU is available here: use {setting('device')} cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"{setting('device')} {name}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
            )
    elif device.type != "cpu":
        raise DeviceError(f"device {name!r} is not supported: use auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The UNet's compute precision: the requested one on CUDA, fp32 on the CPU (where half is slow)."""
    if name not in DTYPES:
        raise DeviceError(f"unknown dtype {name!r}: use bf16, fp16 or fp32")
    if device.type != "cuda":
        return torch.float32
    if name == "bf16" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"this GPU does not support bf16: use {setting('dtype')} fp16")
    return DTYPES[name]
