"""The ``compile`` setting: torch.compile of the denoiser, for long runs where the compile time pays back.

The denoiser (UNet or transformer) is compiled in place (``nn.Module.compile``), so every holder
of the module — the capture processors, the feature extractor, the sampler — uses the compiled
forward without knowing. Passes of a compiled denoiser are not stopped early (see
:class:`FeatureExtractor`): the capture processors then trace into one graph per (gradient on/off,
input shape).
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


def is_compiled(denoiser: torch.nn.Module) -> bool:
    """Whether ``denoiser`` was compiled by :func:`compile_denoiser` (and not restored since)."""
    return bool(getattr(denoiser, _MARK, False))


def compile_denoiser(denoiser: torch.nn.Module, backend: str | None = None) -> Callable[[], None]:
    """Compile ``denoiser`` in place; returns the function that restores its eager forward.

    The first passes of each shape are slow (compiling). ``backend`` is torch.compile's; tests use
    "eager" to check the tracing without paying for code generation. None: ``$ADCLI_COMPILE_BACKEND``
    or inductor.
    """
    if is_compiled(denoiser):
        return lambda: None
    backend = backend or os.environ.get(BACKEND_VARIABLE) or "inductor"
    denoiser.compile(backend=backend, dynamic=False)
    setattr(denoiser, _MARK, True)

    def restore() -> None:
        # nn.Module.compile keeps the compiled call here; clearing it brings back the eager forward.
        denoiser._compiled_call_impl = None
        delattr(denoiser, _MARK)

    return restore


@contextmanager
def compiled_denoiser(denoiser: torch.nn.Module, backend: str | None = None) -> Iterator[torch.nn.Module]:
    """:func:`compile_denoiser` for the duration of a block."""
    restore = compile_denoiser(denoiser, backend)
    try:
        yield denoiser
    finally:
        restore()
