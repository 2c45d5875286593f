"""Opening databases: URLs, SQLite tuning, persistence, threads, and isolation between stores."""

from __future__ import annotations

import peewee
import pytest

from brokerflow.errors import BadRequest, BrokerflowError
from brokerflow.storage import open_store
from brokerflow.storage.db import checkpoint, open_database
from tests.storage.conftest import run_threads


def test_the_store_names_its_url_and_backend(store, db_url):
    assert store.url == db_url
    assert store.backend == ("sqlite" if db_url.startswith("sqlite") else "postgresql")


@pytest.mark.parametrize("url", ["mysql://root@localhost/bf", "redis://localhost/0", "brokerflow.db", ""])
def test_an_unsupported_url_scheme_is_a_bad_request(url):
    with pytest.raises(BadRequest) as info:
        open_database(url)
    assert isinstance(info.value, BrokerflowError)
    assert info.value.details[0]["path"] == "db"


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_in_memory_sqlite_is_refused_because_threads_would_not_share_it(url):
    with pytest.raises(BadRequest, match="file"):
        open_database(url)


def test_sqlite_is_tuned_for_many_threads(sqlite_url):
    db = open_database(sqlite_url)
    assert isinstance(db, peewee.SqliteDatabase)
    try:
        assert db.journal_mode == "wal"
        assert db.pragma("busy_timeout") == 5000
        assert db.foreign_keys == 1
        assert db.synchronous == 1  # NORMAL
    finally:
        db.close()


def test_postgres_scheme_is_an_alias_of_postgresql(db_url):
    if not db_url.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    with open_store("postgres://" + db_url.removeprefix("postgresql://")) as store:
        assert store.backend == "postgresql"
        assert store.meta.get("schema_version") is not None


def test_data_survives_closing_and_reopening_the_store(db_url):
    with open_store(db_url) as store:
        rule = store.rules.add({"name": "big deposit", "brand": "b1", "trigger": "deposit.created"})
        store.runs.write_many([{"id": 1, "rule_id": rule["id"], "status": "success", "actions": []}])
        store.reference.upsert("group", {"group": "real\\g1", "brand": "b1", "currency": "USD"})
        store.meta.set("secret", "s3cr3t")
    with open_store(db_url) as store:
        assert store.rules.get(rule["id"]) == rule
        assert [run["id"] for run in store.runs.list()] == [1]
        assert store.reference.all("group") == [{"group": "real\\g1", "brand": "b1", "currency": "USD"}]
        assert store.meta.get("secret") == "s3cr3t"


def test_every_thread_uses_its_own_connection(store):
    store.rules.add({"name": "r", "brand": "b", "trigger": "trade.opened"})
    connections = []

    def work(_index: int) -> int:
        connections.append(store.db.connection())  # kept alive, so ids cannot be reused
        return len(store.rules.list())

    assert run_threads(4, work, store) == [1, 1, 1, 1]
    assert len({id(connection) for connection in connections}) == 4


def test_two_stores_on_two_databases_do_not_interfere(store, other_db_url):
    with open_store(other_db_url) as other:
        store.rules.add({"name": "only here", "brand": "b", "trigger": "trade.opened"})
        other.reference.upsert("rate", {"currency": "EUR", "usd": 1.1})
        first_ids, other_ids = store.runs.allocate_ids(10), other.runs.allocate_ids(10)

        assert [rule["name"] for rule in store.rules.list()] == ["only here"]
        assert other.rules.list() == []
        assert store.reference.all("rate") == []
        assert other.reference.all("rate") == [{"currency": "EUR", "usd": 1.1}]
        assert first_ids == other_ids == range(1, 11)  # each database has its own counter



def test_the_postgresql_test_url_puts_the_store_in_its_own_schema(store, db_url):
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL only")
    schema = store.db.execute_sql("SELECT current_schema()").fetchone()[0]
    assert schema.startswith("t_") and f"search_path%3D{schema}" in db_url
    tables = store.db.execute_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    ).fetchall()
    assert "rules" in {name for (name,) in tables}


def test_a_checkpoint_copies_the_whole_wal_and_commits_leave_it_to_the_checkpointer(store, db_url):
    store.notifications.add_many([{"manager_id": 1, "message": "x" * 200, "brand": "a"} for _ in range(300)])
    result = checkpoint(store.db)
    if not db_url.startswith("sqlite"):
        assert result is None  # PostgreSQL checkpoints by itself
        return
    wal_pages, copied = result
    assert wal_pages > 0 and copied == wal_pages
    assert store.db.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0] == 20_000
