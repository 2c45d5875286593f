"""Imports point down and never in a circle, read from the sources (every branch, lazy ones too).

The layers, bottom up: the package root (``errors``, ``settings``, ``clock``); ``workflow`` (the
pure domain); ``storage`` and ``bus`` (the edges); ``actors``; ``api``; and the shell,
``brokerflow.app``, which alone may import everything. Imports under ``if TYPE_CHECKING:`` are
types only and never run, so they are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import brokerflow

ROOT = Path(brokerflow.__file__).resolve().parent.parent
PARTS = ("workflow", "storage", "bus", "actors", "api")
OLD_TOP_LEVEL = set(PARTS)
# layer -> the layers it may import (itself included)
ALLOWED = {
    "errors": {"errors"},
    "clock": {"clock"},
    "settings": {"settings", "errors", "workflow"},  # it checks option syntax with the domain's own rules
    "workflow": {"workflow", "errors"},
    "storage": {"storage", "errors", "settings", "clock", "workflow"},
    "bus": {"bus", "errors", "settings", "clock", "workflow"},
    "actors": {"actors", "errors", "settings", "clock", "workflow", "bus"},
    "api": {"api", "errors", "settings", "clock", "workflow", "bus"},
    "app": {"app", "errors", "settings", "clock", "workflow", "storage", "bus", "actors", "api"},
    "brokerflow": {"brokerflow"},  # the package's own __init__ / __main__
}


def _module_files() -> Iterator[tuple[str, Path]]:
    """(module name, path) of every module of the package, as installed names."""
    for folder, prefix in [(ROOT / "brokerflow", "brokerflow"), *[(ROOT / p, f"brokerflow.{p}") for p in PARTS]]:
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [] if rel.parts == ("__init__",) else [p for p in rel.parts if p != "__init__"]
            yield ".".join([prefix, *parts]), path


MODULES = dict(_module_files())


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "brokerflow"
    return "app" if parts[1] == "__main__" else parts[1]  # ``python -m brokerflow`` is the shell


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """Absolute names imported anywhere in ``tree`` but under ``if TYPE_CHECKING``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child.lineno, alias.name
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    yield child.lineno, full if full in MODULES else base
            stack.append(child)


def _graph() -> dict[str, list[tuple[int, str]]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = list(_imports(tree, module, path.name == "__init__.py"))
    return graph


GRAPH = _graph()


def _target(name: str) -> str | None:
    """The package module an imported name lands in (the longest known prefix), else None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def test_every_part_of_the_package_is_found():
    layers = {_layer(module) for module in MODULES}
    assert {"errors", "settings", "clock", "app", *PARTS} <= layers


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_and_those_below(module):
    problems = []
    for line, name in GRAPH[module]:
        top = name.split(".")[0]
        if top in OLD_TOP_LEVEL:
            problems.append(f"line {line}: imports {name}; the parts are brokerflow.{top}...")
            continue
        target = _target(name)
        if target is None or target == "brokerflow":
            continue
        if _layer(target) not in ALLOWED[_layer(module)]:
            problems.append(f"line {line}: {_layer(module)} imports {target} ({_layer(target)} is not below it)")
    assert problems == []


def test_no_import_cycle_anywhere():
    edges = {module: sorted({t for _, name in GRAPH[module] if (t := _target(name)) and t != module
                             and t != "brokerflow"}) for module in MODULES}
    cycles = _cycles(edges)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(edges.get(child, ()))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


@pytest.mark.parametrize("source, layer, bad", [
    ("from brokerflow.app.engine import Engine", "actors", True),
    ("from brokerflow.storage import open_store", "workflow", True),
    ("from brokerflow.api.client import ApiClient", "bus", True),
    ("import workflow.events", "actors", True),
    ("from brokerflow.workflow.events import Event", "actors", False),
    ("from brokerflow.errors import NotFound", "storage", False),
])
def test_the_checker_tells_a_wrong_arrow_from_a_right_one(source, layer, bad):
    tree = ast.parse(source)
    module = f"brokerflow.{layer}.probe"
    wrong = []
    for _, name in _imports(tree, module, False):
        target = _target(name)
        wrong.append(name.split(".")[0] in OLD_TOP_LEVEL
                     or (target is not None and target != "brokerflow" and _layer(target) not in ALLOWED[layer]))
    assert any(wrong) is bad


def test_the_cycle_finder_finds_a_cycle_and_only_that():
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert _cycles({"a": ["b"], "b": [], "c": ["a", "b"]}) == []
