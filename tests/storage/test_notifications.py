"""Notifications are written a batch per statement; every value comes back as it went in."""

from __future__ import annotations

import sqlite3

import pytest

try:
    import psycopg2
except ImportError:  # the PostgreSQL cases are skipped then
    DRIVER_ERRORS: tuple = (sqlite3.Error,)
else:
    DRIVER_ERRORS = (sqlite3.Error, psycopg2.Error)

TEXTS = ["plain", "123", "-7.5", "null", 'quote " back \\ slash', "new\nline\ttab", "ünïcödé €", "emoji 🚀 𝄞",
         '{"json": [1, 2]}', "", "  spaced  "]


def test_a_batch_keeps_its_order_and_every_value(store):
    rows = [(i + 1, text, 3, 1000 + i, "alpha", 1_790_000_000_000 + i) for i, text in enumerate(TEXTS)]
    assert store.notifications.add_rows(rows) == len(rows)
    listed = store.notifications.list(limit=100)
    assert [(n["manager_id"], n["message"], n["rule_id"], n["run_id"], n["brand"], n["created_at"])
            for n in reversed(listed)] == rows
    assert [n["id"] for n in listed] == sorted((n["id"] for n in listed), reverse=True)


def test_missing_values_are_stored_as_null(store):
    store.notifications.add_rows([(4, None, None, None, None, 5)])
    [note] = store.notifications.list()
    assert (note["message"], note["rule_id"], note["run_id"], note["brand"]) == (None, None, None, None)


def test_a_large_batch_is_stored_whole_and_in_order(store):
    rows = [(i % 7 + 1, f"note {i}", 1, i, "beta", 5) for i in range(2500)]
    assert store.notifications.add_rows(rows) == 2500
    listed = store.notifications.list(brand="beta", limit=3000)
    assert [n["run_id"] for n in listed] == list(range(2499, -1, -1))


def test_an_empty_batch_writes_nothing(store):
    assert store.notifications.add_rows([]) == 0
    assert store.notifications.add_many([]) == 0
    assert store.notifications.list() == []


def test_a_value_the_driver_cannot_bind_fails_the_batch_and_stores_nothing(store):
    with pytest.raises(DRIVER_ERRORS):
        store.notifications.add_rows([(1, "ok", 1, 1, "a", 5), (2, object(), 1, 2, "a", 5)])
    assert store.notifications.list() == []


def test_a_nul_character_inside_a_message_is_kept_where_the_backend_can_hold_it(store, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL text cannot hold NUL")
    store.notifications.add_rows([(1, "a\x00b", 1, 1, "a", 5), (2, "c", 1, 2, "a", 5)])
    assert [n["message"] for n in store.notifications.list()] == ["c", "a\x00b"]


def test_trim_deletes_notifications_created_before_the_cutoff(store):
    store.notifications.add_many([{"manager_id": 1, "message": f"m{i}", "created_at": 100 * i} for i in range(1, 6)])
    deleted, last = store.notifications.trim(before_ms=350, after_id=-1, limit=10)
    assert deleted == 3 and last is not None
    assert [n["message"] for n in store.notifications.list()] == ["m5", "m4"]
