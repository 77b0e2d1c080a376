"""Loading without noise: diffusers and transformers warn about their own deprecations and draw
progress bars while loading; a user can do nothing about either, and a failed load must stay one
line. The library prints nothing (the CLI does)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_loading() -> Iterator[None]:
    """diffusers/transformers warn and draw progress bars while loading; this library prints nothing."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    saved = dlog.get_verbosity(), tlog.get_verbosity(), dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()  # transformers 5 draws "Loading weights" bars for each text encoder
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        dlog.set_verbosity(saved[0])
        tlog.set_verbosity(saved[1])
        if saved[2]:
            dlog.enable_progress_bar()
        if saved[3]:
            tlog.enable_progress_bar()


# Loggers that talk while diffusers imports the optional quantization backends (torchao 0.18 on torch 2.13:
# CUDA-only extensions it cannot load on a CPU, a pytree deprecation; bitsandbytes: a CPU kernel package it
# lacks; diffusers itself when torchao's tensor classes do not import).
BACKEND_LOGGERS = ("torchao", "bitsandbytes", "torch.utils._pytree", "diffusers.quantizers.torchao.torchao_quantizer")


def quiet_quantization_backends() -> None:
    """Silence what torchao and bitsandbytes log (below errors) when diffusers imports them — which it does
    whenever they are installed, on the first ``import diffusers``; so this runs when :mod:`adcli.engine`
    is first imported, before any of its modules imports diffusers."""
    for name in BACKEND_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
