"""The workflow package stays pure: no sockets, actors, database, HTTP, threads or clock.

Parsing the sources (instead of importing them) catches an import in any branch, even one a
test never runs, and a call to ``datetime.now()`` anywhere.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import brokerflow.workflow

PACKAGE = Path(brokerflow.workflow.__file__).parent
FORBIDDEN = {"zmq", "pykka", "peewee", "requests", "threading", "socket", "time"}
ALLOWED_THIRD_PARTY = {"croniter", "re2"}
ALLOWED_PROJECT = {"brokerflow.errors", "brokerflow.workflow"}
CLOCK_CALLS = {"now", "utcnow", "today"}
CLOCK_OWNERS = {"datetime", "date"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _import_problem(module: str) -> str | None:
    top = module.split(".")[0]
    if top in FORBIDDEN:
        return f"imports {module} ({top} is forbidden in workflow/)"
    if top == "brokerflow":
        allowed = any(module == m or module.startswith(m + ".") for m in ALLOWED_PROJECT)
        return None if allowed else f"imports {module} (only brokerflow.errors and brokerflow.workflow are allowed)"
    if top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names or top == "__future__":
        return None
    return f"imports {module} (not stdlib, croniter or brokerflow.errors)"


def _clock_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = _dotted(node.func.value).split(".")[-1]
            if node.func.attr in CLOCK_CALLS and owner in CLOCK_OWNERS:
                found.append((node.lineno, f"{_dotted(node.func)}()"))
    return found


def problems_of(source: str, name: str = "<source>") -> list[str]:
    """Every purity violation of one module's source, as ``name:line: what``."""
    tree = ast.parse(source, filename=name)
    problems = [(line, _import_problem(module)) for line, module in _imported_modules(tree)]
    problems += [(line, f"calls {call} (pass now_ms in)") for line, call in _clock_calls(tree)]
    return [f"{name}:{line}: {what}" for line, what in problems if what]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_has_modules_to_check():
    assert any(path.name == "events.py" for path in _modules())


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_workflow_module_is_pure(path):
    assert problems_of(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize(
    "source",
    [
        "import zmq",
        "import pykka.actor",
        "from peewee import Model",
        "import requests",
        "import threading",
        "from socket import socket",
        "import time",
        "from time import monotonic",
        "import brokerflow.storage",
        "from brokerflow.storage import open_store",
        "from brokerflow.clock import now_ms",
        "from brokerflow.bus.codec import decode",
        "import workflow.events",
        "from brokerflow.settings import Settings",
        "from brokerflow import engine",
        "import msgpack",
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "def f():\n    import threading\n",
    ],
)
def test_the_checker_catches_impure_code(source):
    assert problems_of(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import re, json, ipaddress\nfrom urllib.parse import urlsplit",
        "from datetime import datetime, timezone\nx = datetime(2026, 1, 1, tzinfo=timezone.utc)",
        "from croniter import croniter",
        "from brokerflow.errors import ValidationFailed",
        "from brokerflow.workflow.catalog import FIELDS\nfrom . import events",
        "x = thing.now()",
    ],
)
def test_the_checker_lets_pure_code_through(source):
    assert problems_of(source) == []
