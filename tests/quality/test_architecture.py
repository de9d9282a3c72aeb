"""The layout is the architecture: imports point one way, no cycles, small modules.

Layers, top to bottom (a module may import its own subpackage and any layer below)::

    cli  ->  render  ->  trace, doctor  ->  core  ->  errors
    cli  ->  dask (engine)  ->  io  ->  core.spec / core types  ->  errors

Every ``import`` counts, also those inside functions (lazy imports) and under
``TYPE_CHECKING``: a lazy import that points the wrong way is still a wrong-way
dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "lossctl"

# What each part of the package may import (besides itself and the standard library).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "core": {"errors"},
    "doctor": {"core", "errors"},
    "trace": {"core", "errors"},
    "io": {"core", "errors"},
    "render": {"trace", "doctor", "core", "errors"},
    "dask": {"io", "core", "errors"},
    "cli": {"render", "trace", "doctor", "io", "core", "dask", "errors", "__init__"},
    "__init__": {"core", "errors", "render", "trace"},  # the lazy public API table
    "__main__": {"cli"},
}
# Libraries that only the outer layers may use.
FORBIDDEN_LIBRARIES: dict[str, set[str]] = {
    "core": {"rich", "typer", "json", "click"},
    "doctor": {"rich", "typer", "json", "click"},
    "trace": {"rich", "typer", "json", "click"},
    "io": {"rich", "typer", "click"},
    "render": {"typer", "click"},
}
MAX_LINES = 500


def part_of(module: str) -> str:
    """``lossctl.core.losses`` -> ``core``; ``lossctl.errors`` -> ``errors``."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1].startswith("__version"):
        return "__init__"
    return parts[1]


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports (absolute names), with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            if target == "lossctl":  # from lossctl import errors / __version__
                found += [(f"lossctl.{alias.name}", node.lineno) for alias in node.names]
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def lossctl_graph() -> dict[str, set[str]]:
    known = {module_name(path) for path in modules()}
    graph: dict[str, set[str]] = defaultdict(set)
    for path in modules():
        for target, _ in imports_of(path):
            if target in known and target != module_name(path):
                graph[module_name(path)].add(target)
    return graph


def test_the_layout_has_the_documented_parts() -> None:
    parts = {part_of(module_name(path)) for path in modules()}
    assert {"core", "doctor", "trace", "io", "render", "cli", "errors"} <= parts
    assert parts <= set(ALLOWED), f"a part without a rule: {parts - set(ALLOWED)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    here = part_of(module_name(path))
    wrong = []
    for target, line in imports_of(path):
        if target == "lossctl" or target.startswith("lossctl."):
            there = part_of(target) if target != "lossctl" else "__init__"
            if there != here and there not in ALLOWED[here]:
                wrong.append(f"line {line}: {here} imports {target}")
        elif target.split(".")[0] in FORBIDDEN_LIBRARIES.get(here, set()):
            wrong.append(f"line {line}: {here} imports the library {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    """Between modules, lazy imports included (a cycle would make one layer of two)."""
    graph = lossctl_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ re-exporting its own modules is not a cycle of layers
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it by job"


def test_the_rule_catches_a_wrong_way_import(tmp_path: Path) -> None:
    """The checker itself: an import from core into cli is reported."""
    fake = PACKAGE / "core" / "_probe_for_test.py"
    fake.write_text("def f() -> None:\n    from lossctl.cli import app  # noqa\n")
    try:
        with pytest.raises(AssertionError, match=r"core imports lossctl\.cli"):
            test_imports_point_down(fake)
    finally:
        fake.unlink()
