"""``--compile``: torch.compile of the UNet, for long runs where the compile time pays back.

The UNet is compiled in place (``nn.Module.compile``), so every holder of the module — the
capture processors, the feature extractor, the sampler — uses the compiled forward without
knowing. Passes of a compiled UNet are not stopped early (see :class:`FeatureExtractor`): the
capture processors then trace into one graph per (gradient on/off, input shape).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

_MARK = "_adcli_compiled"
# torch.compile's backend when none is named: inductor, or e.g. "eager" to trace without generating
# code (what the CPU run of `make gpu-check` uses: inductor's C++ build takes many minutes on a CPU).
BACKEND_VARIABLE = "ADCLI_COMPILE_BACKEND"


def is_compiled(unet: torch.nn.Module) -> bool:
    """Whether ``unet`` was compiled by :func:`compile_unet` (and not restored since)."""
    return bool(getattr(unet, _MARK, False))


def compile_unet(unet: torch.nn.Module, backend: str | None = None) -> Callable[[], None]:
    """Compile ``unet`` in place; returns the function that restores its eager forward.

    The first passes of each shape are slow (compiling). ``backend`` is torch.compile's; tests use
    "eager" to check the tracing without paying for code generation. None: ``$ADCLI_COMPILE_BACKEND``
    or inductor.
    """
    if is_compiled(unet):
        return lambda: None
    backend = backend or os.environ.get(BACKEND_VARIABLE) or "inductor"
    unet.compile(backend=backend, dynamic=False)
    setattr(unet, _MARK, True)

    def restore() -> None:
        # nn.Module.compile keeps the compiled call here; clearing it brings back the eager forward.
        unet._compiled_call_impl = None
        delattr(unet, _MARK)

    return restore


@contextmanager
def compiled_unet(unet: torch.nn.Module, backend: str | None = None) -> Iterator[torch.nn.Module]:
    """:func:`compile_unet` for the duration of a block."""
    restore = compile_unet(unet, backend)
    try:
        yield unet
    finally:
        restore()
