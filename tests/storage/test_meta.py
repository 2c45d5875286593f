"""Meta strings and notifications: the small repositories."""

from __future__ import annotations

from brokerflow.storage import SCHEMA_VERSION
from tests.storage.conftest import run_threads


def test_meta_get_set_and_default(store):
    assert store.meta.get("secret") is None
    assert store.meta.get("secret", "fallback") == "fallback"
    store.meta.set("secret", "a")
    store.meta.set("secret", "b")
    assert store.meta.get("secret") == "b"


def test_schema_version_is_kept_in_meta(store):
    assert store.meta.get("schema_version") == str(SCHEMA_VERSION)


def test_set_default_lets_the_first_writer_win_across_threads(store):
    values = run_threads(4, lambda i: store.meta.set_default("server_secret", f"secret-{i}"), store)
    assert len(set(values)) == 1
    assert store.meta.get("server_secret") == values[0]


def test_notifications_are_stored_in_batches_and_listed_newest_first(store):
    stored = store.notifications.add_many([
        {"manager_id": 9, "message": "big deposit", "rule_id": 1, "run_id": 10, "brand": "alpha"},
        {"manager_id": 8, "message": "hello", "rule_id": 1, "run_id": 10, "brand": "alpha", "created_at": 5},
    ])
    assert stored == 2
    listed = store.notifications.list()
    assert [(n["manager_id"], n["message"]) for n in listed] == [(8, "hello"), (9, "big deposit")]
    assert listed[0]["created_at"] == 5 and listed[1]["created_at"] > 5
    assert [n["manager_id"] for n in store.notifications.list(manager_id=9)] == [9]
    assert store.notifications.list(brand="beta") == []
