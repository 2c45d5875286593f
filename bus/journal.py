"""The replay journal: every event a relay or a journaling publisher sends, committed first.

PROTOCOL §7 promises that an event is on disk before any subscriber can see it, so a consumer
that missed it (overload, a restart, a dropped connection) can ask for it again. This is that
disk: one SQLite file, written by raw ``sqlite3`` rather than peewee because the relay appends
every event it forwards and ``executemany`` is several times peewee's speed (PERFORMANCE.md).

Durability: WAL with ``synchronous=NORMAL`` (the default) means a committed event survives a
``kill -9`` of the process; a crash of the operating system or a power cut may lose the last
commits before the WAL was synced. ``synchronous="FULL"`` syncs every commit and survives
those too, at a cost in events/s.

Layout: ``events(source, seq, topic, payload, at_ms)`` keyed by ``(source, seq)`` (no rowid),
and ``marks(source, seq, at_ms)``: one row per source and appended batch, the highest seq of
the batch and when it was written. Trimming by age reads the small marks table instead of an
index over every event's time, which would cost each append a second B-tree insert.

The newest event of a source is never trimmed, so a source's last seq survives any retention:
a restarted relay continues its numbering and ``sources()`` names every source ever journaled.

Threads: a ``sqlite3`` connection belongs to the thread that uses it. Use one ``Journal`` per
thread (the relay's appender, its replay server and its trimmer each open their own). With
``shared=True`` the object may move between threads, but the caller must still make sure only
one thread uses it at a time (the publisher library holds its lock around it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

__all__ = ["MAX_SEQ", "Journal", "JournalRow"]

JournalRow = tuple[str, int, bytes, bytes]  # (source, seq, topic, payload)
MAX_SEQ = 0x7FFF_FFFF_FFFF_FFFF  # SQLite's INTEGER; PROTOCOL §2 seqs are in this range too
TRIM_BATCH = 2000  # rows deleted per transaction: the appender never waits long for the write lock
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (source TEXT NOT NULL, seq INTEGER NOT NULL, topic BLOB NOT NULL,"
    " payload BLOB NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (source, seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS marks (source TEXT NOT NULL, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL,"
    " PRIMARY KEY (source, seq)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS marks_at ON marks (at_ms)",
)


class Journal:
    """One connection to a journal file (created if missing)."""

    def __init__(self, path: str, synchronous: str = "NORMAL", shared: bool = False,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per batch.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=not shared,
                                   timeout=busy_timeout_ms / 1000)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def append(self, rows: Sequence[JournalRow], at_ms: int) -> int:
        """Commit ``rows`` in one transaction; an existing ``(source, seq)`` is kept, not replaced.

        Returns how many rows were new. When this returns, the rows are committed (see the
        module's note on durability) and may be published.
        """
        if not rows:
            return 0
        top: dict[str, int] = {}
        for source, seq, _topic, _payload in rows:
            if top.get(source, -1) < seq:
                top[source] = seq
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO events (source, seq, topic, payload, at_ms) VALUES (?, ?, ?, ?, ?)",
                           [(source, seq, topic, payload, at_ms) for source, seq, topic, payload in rows])
            inserted = db.total_changes - before
            db.executemany("INSERT OR REPLACE INTO marks (source, seq, at_ms) VALUES (?, ?, ?)",
                           [(source, seq, at_ms) for source, seq in top.items()])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return inserted

    def last_seq(self, source: str) -> int | None:
        """The highest seq stored for ``source``, or None if it has none."""
        return self._db.execute("SELECT MAX(seq) FROM events WHERE source = ?", (source,)).fetchone()[0]

    def first_seq(self, source: str) -> int | None:
        return self._db.execute("SELECT MIN(seq) FROM events WHERE source = ?", (source,)).fetchone()[0]

    def sources(self) -> dict[str, tuple[int, int]]:
        """Every source with its stored range ``(first_seq, last_seq)``.

        Walks the primary key one source at a time (three index look-ups per source) instead of
        a GROUP BY, which would read every event.
        """
        found: dict[str, tuple[int, int]] = {}
        db = self._db
        row = db.execute("SELECT source FROM events ORDER BY source LIMIT 1").fetchone()
        while row is not None:
            source = row[0]
            first, last = db.execute("SELECT MIN(seq), MAX(seq) FROM events WHERE source = ?", (source,)).fetchone()
            found[source] = (first, last)
            row = db.execute("SELECT source FROM events WHERE source > ? ORDER BY source LIMIT 1",
                             (source,)).fetchone()
        return found

    def read(self, source: str, from_seq: int, to_seq: int | None, max_events: int,
             max_bytes: int) -> list[tuple[int, bytes, bytes]]:
        """``(seq, topic, payload)`` from ``from_seq`` up to ``to_seq`` (inclusive), ascending.

        Stops after ``max_events``, or before the event that would take the topics and payloads
        past ``max_bytes`` — but returns at least one event when there is any, so a caller
        paging by the last seq it got always moves on.
        """
        upper = MAX_SEQ if to_seq is None else to_seq
        cursor = self._db.execute(
            "SELECT seq, topic, payload FROM events WHERE source = ? AND seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
            (source, from_seq, upper, max_events))
        out: list[tuple[int, bytes, bytes]] = []
        size = 0
        for seq, topic, payload in cursor:
            size += len(topic) + len(payload)
            if out and size > max_bytes:
                break
            out.append((seq, topic, payload))
        cursor.close()
        return out

    def trim(self, keep_events: int, keep_ms: int, now_ms: int) -> int:
        """Delete what is past the retention: beyond the newest ``keep_events`` of each source,
        or written before ``now_ms - keep_ms``. The newest event of a source always stays.

        Deletes in transactions of at most ``TRIM_BATCH`` rows, so an appender on another
        connection waits for one small delete at most. Returns the rows deleted.
        """
        deleted = 0
        cutoff_ms = now_ms - keep_ms
        for source, (first, last) in self.sources().items():
            upto = last - max(1, keep_events)  # delete seq <= upto
            aged = self._db.execute("SELECT MAX(seq) FROM marks WHERE source = ? AND at_ms < ?",
                                    (source, cutoff_ms)).fetchone()[0]
            if aged is not None:
                upto = max(upto, min(aged, last - 1))
            if upto >= first:
                deleted += self._delete_through(source, first, upto)
                self._db.execute("DELETE FROM marks WHERE source = ? AND seq <= ?", (source, upto))
        return deleted

    def _delete_through(self, source: str, first: int, upto: int) -> int:
        deleted, low = 0, first
        while low <= upto:
            high = min(upto, low + TRIM_BATCH - 1)
            cursor = self._db.execute("DELETE FROM events WHERE source = ? AND seq >= ? AND seq <= ?",
                                      (source, low, high))
            deleted += cursor.rowcount
            if high == upto:
                break
            # Seqs may jump (an upstream that skipped some): go on from the next stored one.
            row = self._db.execute("SELECT MIN(seq) FROM events WHERE source = ? AND seq > ?",
                                   (source, high)).fetchone()
            if row[0] is None:
                break
            low = row[0]
        return deleted

    def close(self) -> None:
        self._db.close()
