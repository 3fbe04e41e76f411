"""Package layering: no import cycle between the parts of ``spendstream``, and a light SDK.

A *part* is a top-level module or subpackage (``spendstream.events``, ``spendstream.sinks``, ...).
An arrow ``a -> b`` is any import in part ``a`` of something in part ``b`` (at any depth of the
module, so function-level imports count too); imports under ``if TYPE_CHECKING:`` are left out,
as they never run.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "spendstream"
# What a service embedding the SDK must never load: the worker side and its dependencies.
WORKER_SIDE = {
    "spendstream.stream",
    "spendstream.sinks",
    "spendstream.alerts",
    "spendstream.notifications",
    "spendstream.worker",
    "spendstream.cli",
    "spendstream.api",
    "spendstream.auth",
    "spendstream.quotas",
    "faust",
    "aiokafka",
    "chdb",
    "clickhouse_connect",
    "apprise",
    "pyarrow",
    "fastapi",
    "uvicorn",
    "structlog",
    "typer",
    "rich",
}


def parts() -> set[str]:
    return {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.stem not in {"__init__", "__main__"})
    }


def part_of(module: str, known: set[str]) -> str | None:
    names = module.split(".")
    if len(names) > 1 and names[0] == "spendstream" and names[1] in known:
        return names[1]
    return None


def imported_modules(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """(imported module or ``module.name``, line) for every import outside TYPE_CHECKING."""
    type_checking: set[int] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if test is not None and "TYPE_CHECKING" in ast.unparse(test):
            type_checking.update(id(inner) for inner in ast.walk(node))
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def import_graph() -> dict[str, dict[str, str]]:
    """part -> {imported part: "file:line" of one such import}."""
    known = parts()
    graph: dict[str, dict[str, str]] = {part: {} for part in known}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        is_package = relative.name == "__init__"
        module = ".".join(relative.parts[:-1] if is_package else relative.parts)
        source = part_of(module, known)
        if source is None:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for target, line in imported_modules(tree, module, is_package):
            destination = part_of(target, known)
            if destination and destination != source:
                graph[source].setdefault(destination, f"{path.relative_to(PACKAGE.parent)}:{line}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search with three colours)."""
    state: dict[str, str] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        trail.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*trail[trail.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        trail.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b": "x"}, "b": {"c": "x"}, "c": {"a": "x"}, "d": {"a": "x"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": "x"}, "b": {}, "c": {"a": "x", "b": "x"}}) is None


def test_relative_imports_are_resolved() -> None:
    tree = ast.parse("from .sinks import entry\nfrom ..pricing import x\n")
    found = {name for name, _ in imported_modules(tree, "spendstream.stream.app", False)}
    assert {"spendstream.stream.sinks.entry", "spendstream.pricing.x"} <= found


def test_package_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert {"producers", "events", "config", "stream", "sinks", "worker", "cli"} <= set(graph)
    assert "sinks" in graph["stream"], "the scan found no arrow it certainly should"
    cycle = find_cycle(graph)
    witnesses = [f"{a} -> {b} ({graph[a][b]})" for a, b in pairwise(cycle or [])]
    assert cycle is None, "import cycle between parts:\n" + "\n".join(witnesses)


def test_importing_the_sdk_loads_nothing_of_the_worker_side() -> None:
    probe = (
        "import json, sys\nimport spendstream.producers\nprint(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    assert "spendstream.producers.recorder" in loaded
    heavy = sorted(
        name
        for name in loaded
        if any(name == root or name.startswith(root + ".") for root in WORKER_SIDE)
    )
    assert heavy == [], f"importing spendstream.producers loads {heavy}"
