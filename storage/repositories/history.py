"""Processed events kept for backtests (``serve --event-retention-hours``), compact and bounded by time.

The engine writes them in batches off the event path; a backtest reads them back page by page,
on its own connection, by trigger and event time. Each row is the event as msgpack (topic,
event, record, id): enough to evaluate a rule against it again with today's reference data.
"""

from __future__ import annotations

from collections.abc import Sequence

from brokerflow.storage.bulk import insert_rows
from brokerflow.storage.repositories.base import Repository


class HistoryRepository(Repository):
    def write(self, rows: Sequence[tuple[int, str, bytes]]) -> None:
        """Add ``(ts, trigger, body)`` rows."""
        with self._write():
            insert_rows(self._db, "event_history", ("ts", "trigger", "body"), rows)

    def prune(self, before_ts: int) -> int:
        """Forget events older than ``before_ts``; returns how many."""
        history = self._m.EventHistory
        with self._write():
            return history.delete().where(history.ts < before_ts).execute()

    def page(self, trigger: str, since_ts: int, until_ts: int, after: tuple[int, int] | None,
             size: int) -> list[tuple[int, int, bytes]]:
        """Up to ``size`` rows ``(id, ts, body)`` of ``trigger`` in ``[since_ts, until_ts]``, in (ts, id)
        order, after the ``(ts, id)`` of the previous page's last row."""
        history = self._m.EventHistory
        where = (history.trigger == trigger) & (history.ts >= since_ts) & (history.ts <= until_ts)
        if after is not None:
            ts, row_id = after
            where &= (history.ts > ts) | ((history.ts == ts) & (history.id > row_id))
        with self._read():
            rows = list(history.select(history.id, history.ts, history.body).where(where)
                        .order_by(history.ts, history.id).limit(size).tuples())
        return [(row_id, ts, bytes(body)) for row_id, ts, body in rows]  # PostgreSQL gives memoryviews
