"""The package's modules import one another without a cycle, TYPE_CHECKING imports included,
and data flows one way through the layers."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parent.parent / "ksm_exporter"
# Layers in the order data flows; a module may import only from its own layer or earlier ones.
# The front ends share a rank and stand side by side: none imports another.
RANKS = {
    "sources": 0,
    "derive": 1,
    "reading": 2,
    "collector": 3,
    "status": 3,
    "tune": 3,
    "audit": 3,
    "config": 4,
    "logs": 4,
    "privileges": 4,
    "server": 5,
    "cli": 6,
    "__main__": 7,
}
FRONT_ENDS = ("collector", "status", "tune", "audit")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ksm_exporter module `path` imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("ksm_exporter")}


@functools.cache  # the package does not change during a run: parsed once for every test
def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in imports_of(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 while on the path being walked, 2 once done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "ksm_exporter.derive.scan_cost" in graph
    assert find_cycle(graph) is None


def layer(module: str) -> str | None:
    """The layer of a module of the package (its folder, or the top-level module), None for
    the package itself, which every layer may import (its version)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_has_a_layer() -> None:
    unranked = {layer(name) for name in import_graph()} - {None, *RANKS}
    assert unranked == set()


def crossings() -> list[tuple[str, str, str, str]]:
    """(module, imported, its layer, the imported one's layer) for every import between two
    layers of the package."""
    return [
        (name, imported, mine, theirs)
        for name, imported_modules in import_graph().items()
        for imported in imported_modules
        if (mine := layer(name)) is not None
        and (theirs := layer(imported)) is not None
        and mine != theirs
    ]


def test_data_flows_one_way_through_the_layers() -> None:
    backwards = sorted(
        f"{name} imports {imported}"
        for name, imported, mine, theirs in crossings()
        if RANKS[theirs] > RANKS[mine]
    )
    assert backwards == []


def test_the_front_ends_stand_side_by_side() -> None:
    """collector, status, tune and audit each turn the host reader's readings into their
    own output: none of them reads the host through, or builds on, another."""
    across = sorted(
        f"{name} imports {imported}"
        for name, imported, mine, theirs in crossings()
        if mine in FRONT_ENDS and theirs in FRONT_ENDS
    )
    assert across == []


def test_the_checks_see_a_wrong_import() -> None:
    assert layer("ksm_exporter.tune.tuner") == "tune"
    assert layer("ksm_exporter.config") == "config"
    assert layer("ksm_exporter") is None
    assert RANKS["reading"] > RANKS["derive"] > RANKS["sources"]
    assert RANKS["server"] > RANKS["collector"] == RANKS["status"] == RANKS["tune"]
