"""Running ``python -m adcli`` in a pseudo-terminal, for tests of what a real terminal shows."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_in_pty(args: list[str], env: dict[str, str], *, columns: int | None = None,
               timeout: float = 240) -> tuple[int, str]:
    """``python -m adcli ARGS`` with a pseudo-terminal as stdout and stderr (``columns`` wide when
    given, as the terminal's own size); its exit code and everything it drew."""
    leader, follower = pty.openpty()
    if columns is not None:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "adcli", *args], stdout=follower, stderr=follower,
                               cwd=ROOT, env=env)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([leader], [], [], 0.5)[0]:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    process.wait(timeout=10)
    os.close(leader)
    return process.returncode, b"".join(chunks).decode(errors="replace")
