"""The board package by role, without import cycles (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_tinyml.board

PACKAGE = Path(pytest_tinyml.board.__file__).parent


def _imports(path: Path) -> set[str]:
    """``pytest_tinyml.board`` modules that ``path`` imports anywhere (top level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "pytest_tinyml.board":
                found |= {f"pytest_tinyml.board.{a.name}" for a in node.names if (PACKAGE / f"{a.name}.py").exists()}
            elif node.module.startswith("pytest_tinyml.board."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pytest_tinyml.board.")}
    return found


def _graph() -> dict[str, set[str]]:
    return {f"pytest_tinyml.board.{p.stem}": _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_in_the_board_package():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_the_cycle_finder_finds_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("role", ["transport", "framing", "protocol", "device_errors", "status", "client", "identity", "board", "benchmark", "predict", "samples",
                                  "connect", "flash", "sim", "simboard", "sim_engine", "result", "fixture"])
def test_each_role_has_its_module(role):
    assert (PACKAGE / f"{role}.py").is_file()


def _offences(source: str) -> tuple[list[str], set[str]]:
    """Private attributes used on a ``board`` or ``client`` (a name or attribute so named), and report/history
    imports."""
    tree = ast.parse(source)
    private = sorted({n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")
                      and not n.attr.startswith("__")
                      and ((isinstance(n.value, ast.Name) and n.value.id in ("client", "board"))
                           or (isinstance(n.value, ast.Attribute) and n.value.attr == "client"))})
    modules = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module:
            modules |= {n.module} | {f"{n.module}.{a.name}" for a in n.names}
    return private, modules & {"pytest_tinyml.report", "pytest_tinyml.history"}


@pytest.mark.parametrize("name", ["board", "benchmark", "predict"])
def test_board_and_benchmark_use_public_verbs_and_write_no_records(name):
    """``benchmark`` uses the client's public verbs; ``board`` writes no report and no history itself."""
    private, records = _offences((PACKAGE / f"{name}.py").read_text())
    assert private == [], f"{name}.py calls client.{private}"
    assert records == set(), f"{name}.py imports {records}"


def test_the_offence_finder_sees_private_calls_and_records():
    source = "from pytest_tinyml import report\ndef f(board, client):\n    board.client._collect('x')\n    client._upload()\n    board._ops()\n"
    assert _offences(source) == (["_collect", "_ops", "_upload"], {"pytest_tinyml.report"})
