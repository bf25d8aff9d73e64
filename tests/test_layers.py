"""The package's import graph: no loops between its modules, and package imports at module top.

A loop makes the import order decide whether a name exists yet (the modules work or fail by who imports first);
imports hidden in functions hide such loops. Sub-package ``__init__`` files count as modules (importing
``smartnet.data.loader`` runs ``smartnet/data/__init__.py``); the root ``smartnet/__init__.py``, which imports every
sub-package for the configs, does not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import smartnet

PACKAGE = Path(smartnet.__file__).parent
ROOT = PACKAGE.name


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, node: ast.ImportFrom | ast.Import, modules: dict[str, Path]) -> set[str]:
    """Package modules an import statement loads (with their parent sub-packages)."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        package = module if modules[module].name == "__init__.py" else module.rsplit(".", 1)[0]
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            name = ".".join(base + ([node.module] if node.module else []))
        else:
            name = node.module or ""
        names = {name} | {f"{name}.{alias.name}" for alias in node.names}
    found = {n for n in names if n in modules}
    for name in list(found):
        parts = name.split(".")
        found |= {".".join(parts[:k]) for k in range(2, len(parts))}
    return {n for n in found if n != ROOT and n != module and not module.startswith(n + ".")}


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    inside_functions = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = _imported(module, node, modules)
                graph[module] |= targets
                if targets and id(node) not in top:
                    inside_functions.append(f"{module}:{node.lineno}")
    return graph, inside_functions


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_loops_between_package_modules():
    graph, _ = _graph()
    assert len(graph) > 50  # the scan sees the package
    assert _cycles(graph) == []


def test_the_loop_finder_finds_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_package_imports_sit_at_module_top():
    _, inside_functions = _graph()
    assert inside_functions == []
