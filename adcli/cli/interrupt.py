"""Ctrl-C in a batch: the first finishes the current image and stops; a second stops at once.

Either way nothing half-written is left (outputs are written to a temporary file and renamed),
and running the same command with --resume continues where it stopped. SIGTERM (a scheduler's
stop, or torchrun passing on a Ctrl-C to its workers) is treated the same way.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

NOTICE = "\nstopping after the current image (press Ctrl-C again to stop at once)\n"


def _notify(quiet: bool) -> None:
    """Straight to the file descriptor: a signal handler must not re-enter Rich's console."""
    if not quiet:
        try:
            os.write(sys.stderr.fileno(), NOTICE.encode())
        except (OSError, ValueError):
            pass


@contextmanager
def stop_after_current(quiet: bool = False) -> Iterator[Callable[[], bool]]:
    """Yield ``should_stop()``; the previous signal handlers are restored on exit."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return

    def on_interrupt(signum, frame) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        _notify(quiet)

    previous = signal.signal(signal.SIGINT, on_interrupt), signal.signal(signal.SIGTERM, on_interrupt)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
