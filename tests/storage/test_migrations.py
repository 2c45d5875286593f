"""Schema migrations: fresh databases, the upgrade path with data, concurrent starts."""

from __future__ import annotations

import pytest

from brokerflow.errors import BadRequest
from brokerflow.storage import SCHEMA_VERSION, open_store
from brokerflow.storage.db import open_database
from brokerflow.storage.migrations import MIGRATIONS, migrate, schema_version
from brokerflow.storage.models import Models
from tests.storage.conftest import run_threads


@pytest.fixture
def raw(db_url):
    """The bare database and its models, without a store (so nothing is migrated yet)."""
    db = open_database(db_url)
    yield db, Models(db)
    db.close()


def test_a_fresh_database_is_migrated_to_the_latest_version(raw):
    db, models = raw
    assert schema_version(db, models) == 0
    assert migrate(db, models) == list(range(1, SCHEMA_VERSION + 1))
    assert schema_version(db, models) == SCHEMA_VERSION == len(MIGRATIONS) >= 2
    assert {"rules", "runs", "meta", "schedule_claims", "flows", "processes"} <= set(db.get_tables())


def test_migrating_again_applies_nothing(raw):
    db, models = raw
    migrate(db, models)
    assert migrate(db, models) == []


def _make_version_1(db, models) -> None:
    """A database as version 1 of the schema left it: runs without run_as."""
    migrate(db, models, target=1)
    db.execute_sql('ALTER TABLE "runs" DROP COLUMN "run_as"')
    assert "run_as" not in {c.name for c in db.get_columns("runs")}
    p = db.param
    db.execute_sql(
        'INSERT INTO "runs" ("id", "rule_id", "rule_version", "brand", "trigger", "event_id", "status", '
        f'"error", "actions", "started_at", "finished_at") VALUES ({", ".join([p] * 11)})',
        (1, 4, 2, "alpha", "deposit.created", "ev-1", "failed", "HTTP 500", '[{"type":"webhook.send"}]', 10, 12),
    )


def test_a_version_1_database_keeps_its_data_when_migrated(raw, db_url):
    db, models = raw
    _make_version_1(db, models)
    assert schema_version(db, models) == 1
    db.close()

    with open_store(db_url) as store:
        assert store.meta.get("schema_version") == str(SCHEMA_VERSION)
        assert store.runs.list() == [{
            "id": 1, "rule_id": 4, "rule_version": 2, "brand": "alpha", "trigger": "deposit.created",
            "event_id": "ev-1", "status": "failed", "error": "HTTP 500", "actions": [{"type": "webhook.send"}],
            "started_at": 10, "finished_at": 12,
        }]
        store.runs.write_many([{"id": 2, "status": "success", "actions": [], "run_as": 9}])
        assert store.runs.list(limit=1)[0]["run_as"] == 9
        assert "run_as" in {column.name for column in store.db.get_columns("runs")}


def test_a_database_newer_than_the_code_is_refused(raw, db_url):
    db, models = raw
    migrate(db, models)
    models.MetaEntry.update(value=str(SCHEMA_VERSION + 1)).where(models.MetaEntry.key == "schema_version").execute()
    db.close()
    with pytest.raises(BadRequest, match="newer"):
        open_store(db_url)


def test_engines_starting_together_on_an_empty_database_migrate_it_once(db_url):
    def start(_index: int) -> int:
        with open_store(db_url) as store:
            return int(store.meta.get("schema_version"))

    assert run_threads(4, start) == [SCHEMA_VERSION] * 4


def _make_version_2(db, models) -> None:
    """A database as version 2 of the schema left it: source_seqs without seen_at, with rows."""
    migrate(db, models, target=2)
    db.execute_sql('DROP INDEX IF EXISTS "sourceseq_seen_at"')
    db.execute_sql('ALTER TABLE "source_seqs" DROP COLUMN "seen_at"')
    assert "seen_at" not in {c.name for c in db.get_columns("source_seqs")}
    p = db.param
    for source, seq in (("bo", 7), ("crm", 3)):
        db.execute_sql(f'INSERT INTO "source_seqs" ("source", "last_seq") VALUES ({p}, {p})', (source, seq))


def test_a_version_2_database_gets_source_seen_times_and_keeps_its_sources(raw, db_url):
    db, models = raw
    _make_version_2(db, models)
    assert schema_version(db, models) == 2
    db.close()

    with open_store(db_url, clock=lambda: 5_000) as store:
        assert int(store.meta.get("schema_version")) == SCHEMA_VERSION >= 3
        assert "seen_at" in {column.name for column in store.db.get_columns("source_seqs")}
        assert "sourceseq_seen_at" in {index.name for index in store.db.get_indexes("source_seqs")}
        assert store.events.load_state()[1] == {"bo": 7, "crm": 3}  # old rows: seen_at 0, kept
        store.events.record([], {"new": 1})
        assert store.events.prune(10, keep_sources=1) == 2
        assert store.events.load_state()[1] == {"new": 1}


def _make_version_7(db, models) -> None:
    """A database as version 7 of the schema left it: window entries without their event's identity."""
    migrate(db, models, target=7)
    db.execute_sql('ALTER TABLE "window_entries" DROP COLUMN "event_key"')
    p = db.param
    for ts in (1000, 2000):
        db.execute_sql(f'INSERT INTO "window_entries" ("brand", "stream", "key", "ts", "value") '
                       f'VALUES ({p}, {p}, {p}, {p}, {p})', ("alpha", "s", "n:501", ts, 5.0))


def test_a_version_7_database_keeps_its_window_entries_which_load_without_identity(raw, db_url):
    db, models = raw
    _make_version_7(db, models)
    assert schema_version(db, models) == 7
    db.close()

    with open_store(db_url) as store:
        assert int(store.meta.get("schema_version")) == SCHEMA_VERSION >= 8
        assert "event_key" in {column.name for column in store.db.get_columns("window_entries")}
        store.rule_state.write([], [("alpha", "s", "n:501", 3000, 1.0, "mt5:3")])
        assert store.rule_state.load_window("alpha", "s", 10) == [
            ("n:501", 1000, 5.0, None), ("n:501", 2000, 5.0, None), ("n:501", 3000, 1.0, "mt5:3")]
