"""Full-size architectures with random weights, for timing without a download.

Each architecture holds its released model's configs (``Architecture.published_configs``, e.g.
``stable-diffusion-v1-5`` and ``stable-diffusion-xl-base-1.0``) and builds them
(``full_size_components``); the cost of a pass does not depend on the weight values. Text
encoders keep their real widths and depths but use the tiny character tokenizer (every prompt is
padded to 77 tokens, so the cost is the same).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from adcli.engine import archs
from adcli.engine.backend import Backend, backend_from_components
from adcli.engine.quiet import quiet_loading


@contextmanager
def _built_on(device: torch.device, dtype: torch.dtype):
    """Create parameters directly on ``device`` and in ``dtype`` (no CPU copy of billions of random numbers,
    no fp32 copy first: FLUX.1's transformer would take 48 GB before its cast to 24 GB of bf16)."""
    default = torch.get_default_dtype()
    with torch.device(device), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        torch.set_default_dtype(dtype)
        try:
            yield
        finally:
            torch.set_default_dtype(default)


def build_full_backend(arch: str, device: torch.device, dtype: torch.dtype) -> Backend:
    """A :class:`Backend` with the full-size architecture ``arch`` (a registry name) and random weights.

    Placed the way :func:`adcli.engine.models.load_backend` places real weights: denoiser and text
    encoders in ``dtype``, the VAE in fp32, everything frozen and in eval mode.
    """
    family = archs.get(arch)
    with _built_on(device, dtype):
        components = family.full_size_components()
    with quiet_loading():  # the VAE's cast to fp32 makes diffusers warn
        backend = backend_from_components(
            family, components, device=device, dtype=dtype, source=f"full-size {arch} (random weights)"
        )
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return backend


def meta_denoiser(arch: str) -> torch.nn.Module:
    """The full-size denoiser on the meta device: shapes only, for counting FLOPs anywhere in a second."""
    family = archs.get(arch)
    with torch.device("meta"):
        return family.full_size_components()[family.denoiser_name].eval().requires_grad_(False)
