"""--help in an 80-column terminal: options grouped in panels, no type placeholders where the name
says what a value is, and a help column wide enough to read."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["style-transfer", "appearance", "texture", "t2i", "expand", "finetune-vae"]
MIN_HELP_COLUMN = 36  # characters of help text per line; it was ~18 beside a type column


def help_in_terminal(command: str, columns: int = 80) -> str:
    """``adcli COMMAND --help`` drawn in a pseudo-terminal ``columns`` wide (no COLUMNS variable:
    Rich asks the terminal), colours removed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.Popen([sys.executable, "-m", "adcli", command, "--help"], stdout=follower, stderr=follower,
                               cwd=ROOT, env={**env, "TERM": "xterm-256color"})
    os.close(follower)
    chunks, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([leader], [], [], 0.5)[0]:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    process.wait(timeout=10)
    os.close(leader)
    assert process.returncode == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r", "")


@pytest.fixture(scope="module")
def pages():
    return {command: help_in_terminal(command) for command in COMMANDS}


@pytest.mark.parametrize("command", COMMANDS)
def test_options_sit_in_panels_in_a_readable_order(pages, command):
    panels = re.findall(r"╭─ (.+?) ─", pages[command])
    expected = ["What the method does", "Model", "Output and run"]
    if command != "finetune-vae":
        expected = ["Inputs", *expected]
    assert [panel for panel in panels if panel != "Arguments"] == expected, panels
    assert "Options" not in panels  # --help sits with the run options, not in a panel of its own


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_with_a_readable_help_column(pages, command):
    lines = pages[command].splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if line.startswith("│") and line.endswith("│")]
    continuation = [re.match(r"│( +)\S", line) for line in rows if not re.match(r"│ +[-*]", line)]
    starts = [len(match.group(1)) + 1 for match in continuation if match and len(match.group(1)) > 4]
    assert starts and 80 - 2 - max(starts) >= MIN_HELP_COLUMN, pages[command]


@pytest.mark.parametrize("command", COMMANDS)
def test_no_type_placeholders_where_the_name_says_it(pages, command):
    options = [line for line in pages[command].splitlines() if re.match(r"│ +(\* +)?--", line)]
    assert options
    for line in options:
        assert not re.search(r"<(int|float|text|str|bool|path)|\[x>=|INTEGER|FLOAT|TEXT", line), line
    assert "--num-images" not in pages[command] or "[default: 1]" in pages[command]
