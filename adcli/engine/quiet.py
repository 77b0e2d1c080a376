"""Loading without noise: diffusers and transformers warn about their own deprecations and draw
progress bars while loading; a user can do nothing about either, and a failed load must stay one
line. The library prints nothing (the CLI does)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_loading() -> Iterator[None]:
    """diffusers/transformers warn and draw progress bars while loading; this library prints nothing."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    saved = dlog.get_verbosity(), tlog.get_verbosity(), dlog.is_progress_bar_enabled()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        dlog.set_verbosity(saved[0])
        tlog.set_verbosity(saved[1])
        if saved[2]:
            dlog.enable_progress_bar()
