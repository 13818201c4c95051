"""The top-level folders stand apart: what tests, lab and bench all drive lives in harness/,
which none of them owns. harness imports none of them, lab and bench never import tests,
tests may import any; and the package the wheel ships imports none of them."""

from __future__ import annotations

import ast
import tomllib
from fnmatch import fnmatchcase

import pytest

from harness.paths import REPO

pytestmark = pytest.mark.unit

# Each folder, and the top-level packages it may never import.
FORBIDDEN = {
    "harness": {"tests", "lab", "bench"},
    "lab": {"tests"},
    "bench": {"tests"},
    "ksm_exporter": {"tests", "lab", "bench", "harness"},  # the wheel ships it alone
}


def imported_packages(source: str, filename: str = "<source>") -> set[str]:
    """The top-level package of every absolute import in `source`, wherever the import
    statement stands (in a function, under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def crossings() -> dict[str, set[str]]:
    """Every module of the folders above, relative to the repository, with the top-level
    packages it imports that its folder may not."""
    return {
        str(path.relative_to(REPO)): imported_packages(path.read_text(), str(path))
        & FORBIDDEN[folder]
        for folder in FORBIDDEN
        for path in sorted((REPO / folder).rglob("*.py"))
    }


def test_the_checker_sees_every_way_to_import() -> None:
    source = (
        "import tests.support.tools\n"
        "from lab.capture import capture\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    import bench.peers as peers\n"
        "def late():\n    from harness import eventually\n"
    )
    assert imported_packages(source) == {"tests", "lab", "bench", "harness"}


def test_the_folders_import_nothing_they_may_not() -> None:
    found = crossings()
    assert {"harness/real_ksm.py", "lab/capture.py", "bench/peers.py"} <= found.keys()
    assert imported_packages((REPO / "lab" / "capture.py").read_text()) >= {"harness"}
    assert {module: names for module, names in found.items() if names} == {}


def test_the_wheel_ships_the_exporter_alone() -> None:
    """Of the packages at the top of the repository, pyproject.toml's package discovery
    (setuptools matches its `include` patterns as fnmatch does) takes ksm_exporter alone."""
    discovery = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = discovery["packages"]["find"]["include"]
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")}
    assert {"ksm_exporter", "harness", "tests", "lab", "bench"} <= packages
    shipped = {name for name in packages if any(fnmatchcase(name, p) for p in patterns)}
    assert shipped == {"ksm_exporter"}
