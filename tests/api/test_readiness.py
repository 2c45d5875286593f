"""``Readiness`` against a real SQLite store: ready, then a damaged database named as the reason."""

from __future__ import annotations

import sqlite3

from brokerflow.api.readiness import Readiness
from brokerflow.storage.store import open_store


def test_a_store_that_answers_is_ready_and_one_that_fails_is_the_reason(tmp_path):
    path = tmp_path / "ready.db"
    store = open_store(f"sqlite:///{path}")
    dead: list[str] = []
    readiness = Readiness(store, lambda: list(dead), timeout_s=5)
    try:
        assert readiness.problems() == []
        dead.append("runlog")
        assert readiness.problems() == ["runlog is not running"]
        with sqlite3.connect(path) as other:  # another program damages the schema under the engine
            other.execute("DROP TABLE meta")
        problems = readiness.problems()
        assert problems[0].startswith("storage: OperationalError: no such table") and problems[1:] == [
            "runlog is not running"]
    finally:
        readiness.close()
        store.close()
