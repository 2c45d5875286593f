"""Manager notifications the rules sent (also published on the outbound bus).

A busy engine stores thousands of notifications a second, so a batch is one statement with the
rows as one JSON text parameter: the database unpacks it (``json_each`` on SQLite,
``json_array_elements`` on PostgreSQL). Per-row ``executemany`` releases and re-acquires the
GIL on every row, which under the engine's busy threads cost seconds for 1000 rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import peewee

from storage.repositories.base import Repository

COLUMNS = ("manager_id", "message", "rule_id", "run_id", "brand", "created_at")
_NAMES = ", ".join(f'"{column}"' for column in COLUMNS)
_SQLITE_INSERT = (f'INSERT INTO "notifications" ({_NAMES}) SELECT '
                  + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(COLUMNS)))
                  + " FROM json_each(?) ORDER BY key")
_SQLITE_ROWS = f'INSERT INTO "notifications" ({_NAMES}) VALUES ({", ".join("?" * len(COLUMNS))})'
_PG_TYPES = ("bigint", "text", "bigint", "bigint", "text", "bigint")
_PG_INSERT = (f'INSERT INTO "notifications" ({_NAMES}) SELECT '
              + ", ".join(f"(row->>{i})::{kind}" for i, kind in enumerate(_PG_TYPES))
              + " FROM json_array_elements(%s::json) WITH ORDINALITY AS t(row, n) ORDER BY n")

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
        """Store rows already in ``COLUMNS`` order (``created_at`` set), in order, in one statement."""
        if not rows:
            return 0
        sqlite = isinstance(self._db, peewee.SqliteDatabase)
        payload = json.dumps(rows, ensure_ascii=False, allow_nan=False)
        with self._write():
            if sqlite and "\\u0000" in payload:  # SQLite's JSON text ends at NUL: keep such text whole
                self._db.cursor().executemany(_SQLITE_ROWS, rows)
            else:
                self._db.cursor().execute(_SQLITE_INSERT if sqlite else _PG_INSERT, (payload,))
        return len(rows)

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
