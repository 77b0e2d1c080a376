"""The package's layers import one way: a lower layer never imports a higher one (README, Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "adcli"
# Bottom to top; ``errors`` and the package root are shared by every layer.
ORDER = ["losses", "engine", "presets", "outputs", "tasks", "batch", "views", "api", "cli"]
SHARED = {"errors", "__init__", "__main__", "configs"}


def _layer(module: str) -> str | None:
    """``adcli.tasks.t2i`` → ``tasks``; None for the shared modules."""
    parts = module.split(".")
    if parts[0] != "adcli" or len(parts) == 1:
        return None
    return None if parts[1] in SHARED else parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``adcli…`` module a file imports, at any depth (imports inside functions count too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names if node.module == "adcli"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("adcli.")]


def test_lower_layers_never_import_higher_ones():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _layer("adcli." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if own is None:
            continue
        for line, name in _imports(path):
            other = _layer(name)
            if other is not None and other in ORDER and ORDER.index(other) > ORDER.index(own):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own}) imports {name} ({other})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_every_package_is_a_known_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert packages | modules <= set(ORDER) | SHARED
