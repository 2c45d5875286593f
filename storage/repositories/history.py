"""Processed events kept for backtests (``serve --event-retention-hours``), compact and bounded by time.

The engine writes them in chunks off the event path: one row per trigger per write, holding
that trigger's events as one msgpack list ``[[ts, topic, event, record, id], ...]`` with the
chunk's oldest and newest ``ts``. A backtest reads the chunks that overlap its range, page by
page, on its own connection.
"""

from __future__ import annotations

from collections.abc import Sequence

from brokerflow.storage.bulk import insert_rows
from brokerflow.storage.repositories.base import Repository

Chunk = tuple[int, int, str, int, bytes]  # (oldest ts, newest ts, trigger, events, body)


class HistoryRepository(Repository):
    def write(self, chunks: Sequence[Chunk]) -> None:
        """Add chunks ``(ts, ts_max, trigger, events, body)``."""
        with self._write():
            insert_rows(self._db, "event_history", ("ts", "ts_max", "trigger", "events", "body"), chunks)

    def prune(self, before_ts: int) -> int:
        """Forget chunks whose newest event is older than ``before_ts``; returns how many."""
        history = self._m.EventHistory
        with self._write():
            return history.delete().where(history.ts_max < before_ts).execute()

    def page(self, trigger: str, since_ts: int, until_ts: int, after: tuple[int, int] | None,
             size: int) -> list[tuple[int, int, bytes]]:
        """Up to ``size`` chunks ``(id, ts, body)`` of ``trigger`` overlapping ``[since_ts, until_ts]``,
        in (oldest ts, id) order, after the ``(ts, id)`` of the previous page's last chunk."""
        history = self._m.EventHistory
        where = (history.trigger == trigger) & (history.ts <= until_ts) & (history.ts_max >= since_ts)
        if after is not None:
            ts, row_id = after
            where &= (history.ts > ts) | ((history.ts == ts) & (history.id > row_id))
        with self._read():
            rows = list(history.select(history.id, history.ts, history.body).where(where)
                        .order_by(history.ts, history.id).limit(size).tuples())
        return [(row_id, ts, bytes(body)) for row_id, ts, body in rows]  # PostgreSQL gives memoryviews


class HistoryReader:
    """The event history on a database connection of its own: a backtest's scan never takes a
    connection (or a lock) of the engine's writers."""

    def __init__(self, url: str) -> None:
        from brokerflow.storage.db import open_database
        from brokerflow.storage.models import Models

        self._db = open_database(url)
        self._history = HistoryRepository(self._db, Models(self._db), lambda: 0)

    def page(self, trigger: str, since_ts: int, until_ts: int, after: tuple[int, int] | None,
             size: int) -> list[tuple[int, int, bytes]]:
        return self._history.page(trigger, since_ts, until_ts, after, size)

    def close(self) -> None:
        self._db.close()
