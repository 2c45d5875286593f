"""Opening a database from a URL, and the two kinds of transaction every repository uses.

SQLite is tuned for one engine process with many threads: WAL (readers never block the
writer), a 5 s busy timeout, foreign keys on, ``synchronous=NORMAL`` (durable at each WAL
checkpoint, fast commits). Peewee keeps one connection per thread. PostgreSQL goes through the
same code path; only the parameter placeholder and the write-lock statement differ.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import peewee
from playhouse import db_url

from brokerflow.errors import BadRequest

SQLITE_PRAGMAS = (  # per connection; WAL is a property of the file, set once by _use_wal
    ("busy_timeout", 5000),
    ("foreign_keys", 1),
    ("synchronous", "NORMAL"),
    # A committing connection checkpoints only as a backstop (80 MB of WAL): the engine's
    # checkpointer thread (``checkpoint``) keeps the WAL short, off the commit path.
    ("wal_autocheckpoint", 20_000),
)
WAL_TIMEOUT_S = 5.0
SCHEMES = {"sqlite": "sqlite", "postgres": "postgresql", "postgresql": "postgresql"}


class HideQueryValues(logging.Filter):
    """peewee logs every query *with its values* at DEBUG: rules' webhook headers, pending
    webhook requests, token hashes. Only the SQL and how many values it had reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if isinstance(msg, tuple) and len(msg) == 2 and isinstance(msg[1], (list, tuple, dict)):
            record.msg = (msg[0], f"<{len(msg[1])} values not logged>")
        return True


logging.getLogger("peewee").addFilter(HideQueryValues())


def backend_of_url(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``; BadRequest for any other scheme."""
    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    backend = SCHEMES.get(scheme.lower())
    if backend is None:
        raise BadRequest(
            f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or postgresql://HOST/DB",
            details=[{"path": "db", "message": f"unsupported scheme {scheme!r}"}],
        )
    return backend


def open_database(url: str) -> peewee.Database:
    """A peewee database for ``url``; each thread connects on first use.

    SQLite: the calling thread connects at once to put the file in WAL mode.
    """
    backend = backend_of_url(url)
    options: dict = {}
    if backend == "sqlite":
        path = urlsplit(url).path[1:]
        if path in ("", ":memory:"):
            raise BadRequest(
                "an SQLite database must be a file (sqlite:///PATH): every thread opens its own "
                "connection, so an in-memory database would not be shared",
                details=[{"path": "db", "message": "in-memory SQLite is not supported"}],
            )
        options["pragmas"] = SQLITE_PRAGMAS
    try:
        db = db_url.connect(url, **options)
    except (ValueError, RuntimeError) as exc:
        raise BadRequest(f"bad database URL: {exc}", details=[{"path": "db", "message": str(exc)}]) from exc
    if backend == "sqlite":
        _use_wal(db)
    return db


def _use_wal(db: peewee.SqliteDatabase) -> None:
    """Switch the file to WAL (it stays so), retrying while another connection is switching it.

    SQLite answers "database is locked" at once, without the busy timeout, when two
    connections change the journal mode of a new file at the same moment.
    """
    deadline = time.monotonic() + WAL_TIMEOUT_S
    while True:
        try:
            mode = db.pragma("journal_mode", "wal")
            break
        except peewee.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # a retry interval, not a wait for an outcome
    if str(mode).lower() != "wal":
        raise BadRequest(f"SQLite refused WAL mode (journal_mode is {mode!r})",
                         details=[{"path": "db", "message": "WAL not available"}])


def backend_of(db: peewee.Database) -> str:
    return "sqlite" if isinstance(db, peewee.SqliteDatabase) else "postgresql"


@contextlib.contextmanager
def _serialized(db: peewee.SqliteDatabase) -> Iterator[None]:
    lock = db.__dict__.setdefault("_brokerflow_write_lock", threading.RLock())
    with lock, db.atomic("IMMEDIATE"):
        yield


def write_block(db: peewee.Database) -> Any:
    """``atomic()`` for an operation that writes.

    On SQLite the transaction takes the write lock up front (``BEGIN IMMEDIATE``): a deferred
    transaction that reads first and writes later fails at once with "database is locked" when
    another thread committed in between, instead of waiting out the busy timeout. Writers of
    one process also queue on a Python lock first: SQLite's busy handler *sleeps* (1, 2, 5,
    10 ms …) between retries, which cost the engine most of its throughput and its p99 when
    the run log, notifications and de-duplication keys wrote at the same time; a lock hands
    over at once. Other processes (``brokerflow token create``) still meet the busy timeout.
    """
    if isinstance(db, peewee.SqliteDatabase):
        return _serialized(db)
    replace_broken(db)
    return db.atomic()


def replace_broken(db: peewee.Database) -> None:
    """PostgreSQL: replace this thread's connection if the server or the network dropped it.

    peewee opens a connection only when the thread has none, so one the server closed (a
    restart, a failover, a network cut) would fail every later transaction of that thread for
    good. Checked before each transaction: psycopg2 marks a lost connection ``closed``, and the
    next transaction then starts on a new one.
    """
    if db.is_closed() or db.in_transaction():
        return
    if getattr(db.connection(), "closed", 0):
        try:
            db.close()
        except Exception:  # noqa: BLE001 - nothing to close cleanly; start afresh
            db._state.reset()


def checkpoint(db: peewee.Database) -> tuple[int, int] | None:
    """Copy what the WAL holds into the database file without waiting for anyone (SQLite).

    A checkpoint syncs the WAL and the database file to disk. Done by whichever connection
    commits past ``wal_autocheckpoint`` pages, it stalled that commit (a Workflow Machine burst,
    a run-log batch) for the length of two fsyncs; the engine calls this from a thread of its
    own instead. PASSIVE never blocks writers or readers: what a reader still needs is copied
    on a later call. Returns ``(WAL pages, pages checkpointed)``; None on PostgreSQL.
    """
    if not isinstance(db, peewee.SqliteDatabase):
        return None
    _busy, wal_pages, done = db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return wal_pages, done


def read_block(db: peewee.Database):
    """``atomic()`` for a read-only operation: one consistent snapshot, no write lock."""
    if not isinstance(db, peewee.SqliteDatabase):
        replace_broken(db)
    return db.atomic()
