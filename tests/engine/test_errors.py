"""Engine errors are typed and name settings through placeholders, never as command-line flags:
the CLI spells them ``--lr``, the API ``lr`` (adcli/errors.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from adcli.engine.attention import select_layers
from adcli.errors import InputError
from adcli.presets import SETTINGS

ENGINE = Path(__file__).resolve().parents[2] / "adcli" / "engine"
FLAG = re.compile(r"--[a-z]")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (documentation may name flags)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def test_no_engine_string_names_a_command_line_flag():
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                if FLAG.search(node.value):
                    offenders.append(f"{path.relative_to(ENGINE.parent.parent)}:{node.lineno}: {node.value.strip()[:70]}")
    assert not offenders, "engine strings naming flags (use adcli.errors.setting()):\n" + "\n".join(offenders)


def test_the_check_sees_flags_in_f_strings():
    """The walk above reaches the literal parts of f-strings (a planted ``--lr`` would be found)."""
    tree = ast.parse('raise ValueError(f"try a smaller --lr than {value}")')
    assert any(isinstance(n, ast.Constant) and FLAG.search(str(n.value)) for n in ast.walk(tree))


def test_a_wrong_layer_is_a_value_error_spelled_per_caller():
    with pytest.raises(ValueError) as caught:
        select_layers(16, [])
    error = caught.value
    assert isinstance(error, InputError)
    assert str(error) == "no attention layers selected: give at least one in layers"
    assert error.render(lambda name: SETTINGS[name].flag) == "no attention layers selected: give at least one in --layers"
