"""The fast write path: a batch is a few statements, and every value comes back as it went in."""

from __future__ import annotations

import json
import math

import pytest

from brokerflow.storage import bulk
from brokerflow.storage.db import write_block

TEXTS = ["plain", "123", "-7.5", "null", "true", 'quote " back \\ slash', "new\nline\ttab", "ünïcödé €",
         "emoji 🚀 𝄞", '{"json": [1, 2]}', "", "  spaced  ", "\\u0000 literally"]
COLUMNS = ("id", "n", "x", "flag", "label", "doc")


@pytest.fixture
def scratch(store):
    """A table of every column kind the repositories write: big integers, reals, booleans, text, JSON."""
    store.db.execute_sql('CREATE TABLE "scratch" ("id" BIGINT PRIMARY KEY, "n" BIGINT, "x" DOUBLE PRECISION, '
                         '"flag" BOOLEAN, "label" TEXT, "doc" TEXT)')
    return store.db


def insert(db, rows, conflict='ON CONFLICT ("id") DO NOTHING') -> None:
    with write_block(db):
        bulk.insert_rows(db, "scratch", COLUMNS, rows, conflict, json_columns=("doc",))


def stored(db) -> list[tuple]:
    cursor = db.execute_sql('SELECT "id", "n", "x", "flag", "label", "doc" FROM "scratch" ORDER BY "id"')
    return [(i, n, x, bool(flag) if flag is not None else None, label, None if doc is None else json.loads(doc))
            for i, n, x, flag, label, doc in cursor.fetchall()]


def test_every_kind_of_value_comes_back_as_it_went_in(scratch):
    rows = [(i + 1, 2**62 + i, i / 3, i % 2 == 0, text, {"text": text, "list": [1, 2.5, None, True]})
            for i, text in enumerate(TEXTS)]
    rows.append((100, None, None, None, None, None))
    insert(scratch, rows)
    assert stored(scratch) == [tuple(row) for row in rows]


def test_a_retried_batch_is_written_once_and_an_upsert_takes_the_new_values(scratch):
    insert(scratch, [(1, 1, 1.0, True, "a", [1])])
    insert(scratch, [(1, 9, 9.0, False, "b", [9]), (2, 2, 2.0, False, "c", [])])
    assert stored(scratch) == [(1, 1, 1.0, True, "a", [1]), (2, 2, 2.0, False, "c", [])]
    insert(scratch, [(2, 5, 5.0, True, "d", {"k": "v"})],
           'ON CONFLICT ("id") DO UPDATE SET "label" = EXCLUDED."label", "doc" = EXCLUDED."doc"')
    assert stored(scratch)[1] == (2, 2, 2.0, False, "d", {"k": "v"})


def test_rows_go_in_in_the_order_given_across_statements(store):
    ids = [f"e{i}" for i in range(1500)]  # SQLite 512 + 512 + 256 + ..., PostgreSQL 1000 + 500
    store.events.record(ids, {"bo": 1500})
    assert store.events.load_state(limit_ids=2000) == (ids, {"bo": 1500})


def test_infinities_nan_and_nul_characters_come_back_too(scratch, db_url):
    rows = [(1, 1, math.inf, True, "inf", [1]), (2, 2, 2.0, False, "nan inside", {"ms": math.nan})]
    if db_url.startswith("sqlite"):
        rows.append((3, 3, 3.0, False, "nul \x00 inside", ["\x00"]))
    insert(scratch, rows)
    back = stored(scratch)
    assert back[0] == (1, 1, math.inf, True, "inf", [1])
    assert back[1][:5] == (2, 2, 2.0, False, "nan inside") and math.isnan(back[1][5]["ms"])
    if db_url.startswith("sqlite"):
        assert back[2] == (3, 3, 3.0, False, "nul \x00 inside", ["\x00"])


def test_a_document_json_cannot_encode_fails_the_batch_and_writes_nothing(scratch):
    with pytest.raises(TypeError):
        insert(scratch, [(1, 1, 1.0, True, "ok", []), (2, 2, 2.0, True, "bad", [object()])])
    assert stored(scratch) == []


def test_nothing_to_write_is_fine(scratch):
    insert(scratch, [])
    assert stored(scratch) == []


def test_a_batch_takes_a_few_statements_on_sqlite_not_one_per_row(scratch, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("the statement trace is SQLite's")
    statements: list[str] = []
    scratch.connection().set_trace_callback(statements.append)
    try:
        insert(scratch, [(i, i, 1.5, True, f"row {i}", [i]) for i in range(1, 1001)])
    finally:
        scratch.connection().set_trace_callback(None)
    assert len([s for s in statements if s.startswith("INSERT")]) == 6  # 512 + 256 + 128 + 64 + 32 + 8
    assert len(stored(scratch)) == 1000


def test_a_document_that_contains_itself_fails_the_batch_and_writes_nothing(scratch):
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError):
        insert(scratch, [(1, 1, 1.0, True, "ok", []), (2, 2, 2.0, True, "loop", loop)])
    assert stored(scratch) == []
