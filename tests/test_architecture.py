"""The layout keeps its promises: no import cycle, no reach into another module's private names, one
flatbuffer reader and one quantization.

Imports are read from the source (``ast``), including the ones inside functions: a lazy import still ties
two modules together, and a cycle through one is the kind that broke ``analyze`` <-> ``c_export``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def modules(src: Path = SRC) -> dict[str, Path]:
    found = {}
    for path in sorted((src / "pytest_tinyml").rglob("*.py")):
        if "firmware_src" in path.parts:
            continue
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(src: Path = SRC) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """Edges module -> modules it imports (anywhere in its body), and (module, other module, private name)
    for every ``_name`` one module takes from another (``from x import _y`` or ``x._y``)."""
    mods = modules(src)
    edges: dict[str, set[str]] = {name: set() for name in mods}
    private: list[tuple[str, str, str]] = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        aliases: dict[str, str] = {}
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    stem = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(stem + ([base] if base else []))
                if not base.startswith("pytest_tinyml"):
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    target = full if full in mods else base
                    if target in mods and target != name:
                        edges[name].add(target)
                    if full in mods:
                        aliases[alias.asname or alias.name] = full
                    elif alias.name.startswith("_") and not alias.name.startswith("__") and target != name:
                        private.append((name, target, alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in mods and alias.name != name:
                        edges[name].add(alias.name)
                        if alias.asname:
                            aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and aliases[node.value.id] != name):
                private.append((name, aliases[node.value.id], node.attr))
    return edges, sorted(set(private))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules():
    edges, _ = import_graph()
    assert "pytest_tinyml.analyze" not in edges["pytest_tinyml.c_export"]
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle_through_a_lazy_import(tmp_path):
    package = tmp_path / "pytest_tinyml"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "analyze.py").write_text("from pytest_tinyml.c_export import export_c_array\n")
    (package / "c_export.py").write_text("def snippet():\n    from pytest_tinyml.analyze import _read\n")
    edges, private = import_graph(tmp_path)
    assert cycles(edges) == [["pytest_tinyml.analyze", "pytest_tinyml.c_export"]]
    assert private == [("pytest_tinyml.c_export", "pytest_tinyml.analyze", "_read")]


def test_no_module_takes_another_modules_private_names():
    _, private = import_graph()
    assert private == []


def test_the_private_finder_sees_attribute_reaches(tmp_path):
    package = tmp_path / "pytest_tinyml"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "report.py").write_text("_current_item = None\n")
    (package / "history.py").write_text("from pytest_tinyml import report\nitem = report._current_item\n")
    _, private = import_graph(tmp_path)
    assert private == [("pytest_tinyml.history", "pytest_tinyml.report", "_current_item")]


@pytest.mark.parametrize(
    ("needle", "owner"),
    [("GetRootAs(", "tflite/schema.py"), ("schema_py_generated", "tflite/schema.py"),
     ("def quantize(", "tflite/quant.py"), ("def dequantize(", "tflite/quant.py")],
)
def test_one_module_owns_each_concept(needle, owner):
    """The flatbuffer is read in one module, tensor values are (de)quantized in one module."""
    holders = sorted(str(path.relative_to(SRC / "pytest_tinyml")) for path in modules().values()
                     if needle in path.read_text())
    assert holders == [owner]
