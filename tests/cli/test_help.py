"""--help in an 80-column terminal: options grouped in panels, no type placeholders where the name
says what a value is, and a help column wide enough to read."""

from __future__ import annotations

import os
import re

import pytest

from tests.support.terminal import run_in_pty

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

COMMANDS = ["style-transfer", "appearance", "texture", "t2i", "expand", "finetune-vae"]
MIN_HELP_COLUMN = 36  # characters of help text per line; it was ~18 beside a type column


def help_in_terminal(command: str, columns: int = 80) -> str:
    """``adcli COMMAND --help`` drawn in a pseudo-terminal ``columns`` wide (no COLUMNS variable:
    Rich asks the terminal), colours removed."""
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    code, screen = run_in_pty([command, "--help"], {**env, "TERM": "xterm-256color"}, columns=columns, timeout=60)
    assert code == 0, screen[-2000:]
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "")


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
