"""Versioned schema migrations: ``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``.

The applied version is the ``schema_version`` row of ``meta``. ``migrate`` applies the missing
steps in order, each in its own transaction together with the version bump, under a lock
(SQLite: the write lock; PostgreSQL: an advisory lock per schema), so several engines starting
on one database at once apply each step exactly once.

Step 1 creates every table of the current models (``safe=True``), so a fresh database already
has what later steps add; every later step therefore checks before it alters (a column that is
there is not added again, indexes are created ``IF NOT EXISTS``). To change the schema: change
the model, then append a step that brings an existing database to the same shape.
"""

from __future__ import annotations

from collections.abc import Callable

import peewee

from brokerflow.errors import BadRequest
from brokerflow.storage.db import backend_of, read_block, write_block
from brokerflow.storage.models import Models

VERSION_KEY = "schema_version"
RUN_IDS = "runs"  # the id_blocks row that hands out run ids


def _create_tables(db: peewee.Database, models: Models) -> None:
    """1: every table, and the run id counter."""
    db.create_tables(models.all(), safe=True)
    block = models.IdBlock
    block.insert(name=RUN_IDS, next=1).on_conflict_ignore().execute()


def _runs_run_as(db: peewee.Database, models: Models) -> None:
    """2: a run records the manager a deferred or sink run acts for (the automation modes)."""
    columns = {column.name for column in db.get_columns("runs")}
    if "run_as" not in columns:
        db.execute_sql('ALTER TABLE "runs" ADD COLUMN "run_as" BIGINT')


def _source_seqs_seen_at(db: peewee.Database, models: Models) -> None:
    """3: when each source was last stored, so a restart keeps the most recently seen sources."""
    columns = {column.name for column in db.get_columns("source_seqs")}
    if "seen_at" not in columns:
        db.execute_sql('ALTER TABLE "source_seqs" ADD COLUMN "seen_at" BIGINT NOT NULL DEFAULT 0')
    db.execute_sql('CREATE INDEX IF NOT EXISTS "sourceseq_seen_at" ON "source_seqs" ("seen_at")')


def _runs_event_key_and_checkpoints(db: peewee.Database, models: Models) -> None:
    """4: a run records its event's (source, seq), unique per rule, and checkpoints per source
    and partition: replays never double a run, restarts resume after the checkpoint."""
    columns = {column.name for column in db.get_columns("runs")}
    if "source" not in columns:
        db.execute_sql('ALTER TABLE "runs" ADD COLUMN "source" TEXT')
    if "seq" not in columns:
        db.execute_sql('ALTER TABLE "runs" ADD COLUMN "seq" BIGINT')
    db.execute_sql('CREATE UNIQUE INDEX IF NOT EXISTS "runs_event_rule" ON "runs" ("source", "seq", "rule_id")')
    db.create_tables([models.Checkpoint], safe=True)


def _rule_language_state(db: peewee.Database, models: Models) -> None:
    """5: rule cooldowns, aggregate windows and the event history of backtests (PROTOCOL section 11)."""
    columns = {column.name for column in db.get_columns("rules")}
    if "cooldown" not in columns:
        db.execute_sql('ALTER TABLE "rules" ADD COLUMN "cooldown" TEXT')
    db.create_tables([models.RuleCooldown, models.WindowEntry, models.EventHistory], safe=True)


def _webhook_tables(db: peewee.Database, models: Models) -> None:
    """6: pending webhook retries and dead letters (PROTOCOL section 10)."""
    db.create_tables([models.WebhookRetry, models.WebhookDeadLetter], safe=True)


def _cluster_tables(db: peewee.Database, models: Models) -> None:
    """7: ``serve --cluster``: its members, the partition leases, the changes for the other members."""
    db.create_tables([models.ClusterMember, models.PartitionLease, models.ClusterChange], safe=True)


def _window_entries_event_key(db: peewee.Database, models: Models) -> None:
    """8: a window entry records its event's identity, so an engine that reloads a window from
    storage (a restart, a takeover) does not count a replayed event it holds already a second
    time. Nullable: rows stored before stay and count as they did."""
    columns = {column.name for column in db.get_columns("window_entries")}
    if "event_key" not in columns:
        db.execute_sql('ALTER TABLE "window_entries" ADD COLUMN "event_key" TEXT')


MIGRATIONS: tuple[Callable[[peewee.Database, Models], None], ...] = (
    _create_tables, _runs_run_as, _source_seqs_seen_at, _runs_event_key_and_checkpoints, _rule_language_state,
    _webhook_tables, _cluster_tables, _window_entries_event_key,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: peewee.Database, models: Models) -> int:
    """The applied version; 0 for an empty database."""
    if not db.table_exists("meta"):
        return 0
    row = models.MetaEntry.get_or_none(models.MetaEntry.key == VERSION_KEY)
    return int(row.value) if row else 0


def _lock(db: peewee.Database) -> None:
    if backend_of(db) == "postgresql":
        db.execute_sql("SELECT pg_advisory_xact_lock(7218, hashtext(current_schema()))")


def _set_version(models: Models, version: int) -> None:
    entry = models.MetaEntry
    entry.insert(key=VERSION_KEY, value=str(version)).on_conflict(
        conflict_target=[entry.key], preserve=[entry.value]
    ).execute()


def migrate(db: peewee.Database, models: Models, target: int = SCHEMA_VERSION) -> list[int]:
    """Apply the missing steps up to ``target``; returns the versions applied now."""
    with read_block(db):
        current = schema_version(db, models)
    if current > SCHEMA_VERSION:
        raise BadRequest(
            f"the database has schema {current}, newer than this brokerflow's {SCHEMA_VERSION}",
            details=[{"path": "db", "message": "schema is newer than the code"}],
        )
    applied: list[int] = []
    for version in range(current + 1, target + 1):
        with write_block(db):
            _lock(db)
            if schema_version(db, models) >= version:
                continue  # another engine applied it while we waited for the lock
            MIGRATIONS[version - 1](db, models)
            _set_version(models, version)
            applied.append(version)
    return applied
