"""The datasets package: its public names, and modules that import one way only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import quantgym.datasets as datasets

PACKAGE = Path(datasets.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
HIGHER_LAYERS = ("quantgym.agents", "quantgym.evaluation", "quantgym.benchmark", "quantgym.cli")


def imports_of(module: str) -> list[tuple[str, list[str]]]:
    """``(imported module, names)`` of every import in ``module``, in functions and
    ``TYPE_CHECKING`` blocks too."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def sibling_imports(module: str) -> set[str]:
    """The other datasets modules ``module`` imports."""
    out = set()
    for target, names in imports_of(module):
        if target == "quantgym.datasets":
            out.update(n for n in names if n in MODULES)
        elif target.startswith("quantgym.datasets."):
            out.add(target.split(".")[2])
    return out - {module}


def test_public_names_resolve():
    for name in datasets.__all__:
        assert getattr(datasets, name) is not None, name
    assert "make_sharded_dataset" not in datasets.__all__


def test_no_import_circle_between_modules():
    graph = {m: sibling_imports(m) for m in MODULES}
    assert graph["trajectory"] >= {"format", "shard_format", "checks"}  # the walk sees them
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                pytest.fail(f"import circle: {' -> '.join([*path, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [])


def test_modules_import_no_private_name_and_no_higher_layer():
    bad = []
    for module in MODULES:
        for target, names in imports_of(module):
            if target.startswith(HIGHER_LAYERS):
                bad.append(f"{module} imports {target}")
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if target.startswith("quantgym") and private:
                bad.append(f"{module} imports {private} from {target}")
    assert bad == []


def test_modules_are_at_most_700_lines():
    lines = {m: len((PACKAGE / f"{m}.py").read_text().splitlines()) for m in MODULES}
    assert {m: n for m, n in lines.items() if n > 700} == {}
