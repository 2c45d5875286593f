"""Manager notifications the rules sent (also published on the outbound bus).

A busy engine stores thousands of notifications a second, so a batch goes through
``storage.bulk.insert_rows``: a few multi-row statements, the GIL released once per statement.
Per-row ``executemany`` releases and re-acquires the GIL on every row, which under the engine's
busy threads cost seconds for 1000 rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from brokerflow.storage.bulk import insert_rows
from brokerflow.storage.repositories.base import Repository

COLUMNS = ("manager_id", "message", "rule_id", "run_id", "brand", "created_at")
Row = Sequence[object]  # values in COLUMNS order


class NotificationRepository(Repository):
    def add_many(self, notifications: Iterable[dict]) -> int:
        """Store a batch; ``created_at`` defaults to now. Returns how many were stored."""
        now = self._clock()
        return self.add_rows([
            (n.get("manager_id"), n.get("message"), n.get("rule_id"), n.get("run_id"), n.get("brand"),
             n.get("created_at") or now)
            for n in notifications
        ])

    def add_rows(self, rows: Sequence[Row]) -> int:
        """Store rows already in ``COLUMNS`` order (``created_at`` set), in order, in few statements."""
        if not rows:
            return 0
        with self._write():
            insert_rows(self._db, "notifications", COLUMNS, rows)
        return len(rows)

    def trim(self, before_ms: int, after_id: int = -1, limit: int = 500) -> tuple[int, int | None]:
        """One retention step: notifications created before ``before_ms`` (``Repository._trim_batch``)."""
        model = self._m.Notification
        return self._trim_batch(model, model.created_at, before_ms, after_id, limit)

    def list(self, manager_id: int | None = None, brand: str | None = None, limit: int = 100) -> list[dict]:
        """Newest first."""
        model = self._m.Notification
        query = model.select().order_by(model.id.desc()).limit(limit)
        if manager_id is not None:
            query = query.where(model.manager_id == manager_id)
        if brand is not None:
            query = query.where(model.brand == brand)
        with self._read():
            return list(query.dicts())
