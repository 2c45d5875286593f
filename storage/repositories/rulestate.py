"""What rules remember between events: cooldowns and aggregate windows (``workflow.rules``).

The rule actors keep both in memory and hand their changes to a writer actor, which stores them
here in batches; an engine reads them back when it loads rules. Both tables are bounded as the
memory is: ``prune`` drops cooldowns past the longest cooldown and window entries past their
stream's horizon, and ``load_*`` read back at most the in-memory caps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from brokerflow.storage.bulk import insert_rows
from brokerflow.storage.repositories.base import Repository

_KEYS_PER_QUERY = 500  # keys in one IN list: SQLite's variable limit and PostgreSQL's plans both stay small


class RuleStateRepository(Repository):
    def write(self, cooldowns: Sequence[tuple[Any, str, int]],
              entries: Sequence[tuple[str, str, str, int, Any, str | None]],
              horizons: Iterable[tuple[str, str, int]] = ()) -> None:
        """Upsert cooldown rows ``(rule_id, key, fired_ms)``, add window rows ``(brand, stream, key, ts,
        value, event_key)`` and drop each ``(brand, stream, before_ts)`` horizon's older rows, in one block."""
        latest = {(rule_id, key): fired for rule_id, key, fired in cooldowns}  # one row per key a statement
        rows = [(rule_id, key, fired) for (rule_id, key), fired in latest.items()]
        entry = self._m.WindowEntry
        with self._write():
            insert_rows(self._db, "rule_cooldowns", ("rule_id", "key", "fired_ms"), rows,
                        'ON CONFLICT ("rule_id", "key") DO UPDATE SET "fired_ms" = excluded."fired_ms"')
            insert_rows(self._db, "window_entries", ("brand", "stream", "key", "ts", "value", "event_key"),
                        entries)
            for brand, stream, before in horizons:
                entry.delete().where((entry.brand == brand) & (entry.stream == stream) & (entry.ts < before)).execute()

    def load_cooldowns(self, rule_ids: Sequence[Any], limit: int) -> list[tuple[Any, str, int]]:
        """The newest ``limit`` cooldown rows of ``rule_ids``, oldest first."""
        if not rule_ids:
            return []
        row = self._m.RuleCooldown
        with self._read():
            rows = list(row.select(row.rule_id, row.key, row.fired_ms).where(row.rule_id.in_(list(rule_ids)))
                        .order_by(row.fired_ms.desc()).limit(limit).tuples())
        rows.reverse()
        return rows

    def load_window(self, brand: str, stream: str, limit: int) -> list[tuple[str, int, Any, str | None]]:
        """The newest ``limit`` entries ``(key, ts, value, event_key)`` of one stream, oldest first."""
        entry = self._m.WindowEntry
        with self._read():
            rows = list(entry.select(entry.key, entry.ts, entry.value, entry.event_key)
                        .where((entry.brand == brand) & (entry.stream == stream))
                        .order_by(entry.ts.desc(), entry.id.desc()).limit(limit).tuples())
        rows.reverse()
        return rows

    def window_keys(self, brand: str, stream: str) -> list[str]:
        """The distinct keys of one stream: a member gaining partitions picks its own among them
        and loads only their entries (``load_window_of``)."""
        entry = self._m.WindowEntry
        with self._read():
            return [key for (key,) in entry.select(entry.key).distinct()
                    .where((entry.brand == brand) & (entry.stream == stream)).tuples()]

    def load_window_of(self, brand: str, stream: str, keys: Sequence[str],
                       limit: int) -> list[tuple[str, int, Any, str | None]]:
        """The newest ``limit`` entries ``(key, ts, value, event_key)`` of ``keys`` in one stream, oldest first."""
        entry = self._m.WindowEntry
        rows: list[tuple[str, int, Any, str | None, int]] = []
        with self._read():
            for first in range(0, len(keys), _KEYS_PER_QUERY):
                chunk = list(keys[first:first + _KEYS_PER_QUERY])
                rows.extend(entry.select(entry.key, entry.ts, entry.value, entry.event_key, entry.id)
                            .where((entry.brand == brand) & (entry.stream == stream) & entry.key.in_(chunk))
                            .order_by(entry.ts.desc(), entry.id.desc()).limit(limit).tuples())
        rows.sort(key=lambda row: (row[1], row[4]))
        return [(key, ts, value, event_key) for key, ts, value, event_key, _ in rows[-limit:]] if limit > 0 else []

    def cooldown_keys(self, rule_ids: Sequence[Any]) -> list[str]:
        """The distinct keys stored for ``rule_ids``' cooldowns (see ``window_keys``)."""
        if not rule_ids:
            return []
        row = self._m.RuleCooldown
        with self._read():
            return [key for (key,) in row.select(row.key).distinct().where(row.rule_id.in_(list(rule_ids))).tuples()]

    def load_cooldowns_of(self, rule_ids: Sequence[Any], keys: Sequence[str], limit: int) -> list[tuple[Any, str, int]]:
        """The newest ``limit`` cooldown rows of ``rule_ids`` and ``keys``, oldest first."""
        if not rule_ids:
            return []
        row = self._m.RuleCooldown
        rows: list[tuple[Any, str, int]] = []
        with self._read():
            for first in range(0, len(keys), _KEYS_PER_QUERY):
                chunk = list(keys[first:first + _KEYS_PER_QUERY])
                rows.extend(row.select(row.rule_id, row.key, row.fired_ms)
                            .where(row.rule_id.in_(list(rule_ids)) & row.key.in_(chunk))
                            .order_by(row.fired_ms.desc()).limit(limit).tuples())
        rows.sort(key=lambda r: r[2])
        return rows[-limit:] if limit > 0 else []

    def window_of(self, brand: str, stream: str, key: str, since_ts: int, until_ts: int) -> list[tuple[int, Any]]:
        """The stored entries ``(ts, value)`` of one key in ``[since_ts, until_ts]`` (dry runs)."""
        entry = self._m.WindowEntry
        with self._read():
            return list(entry.select(entry.ts, entry.value)
                        .where((entry.brand == brand) & (entry.stream == stream) & (entry.key == key)
                               & (entry.ts >= since_ts) & (entry.ts <= until_ts))
                        .order_by(entry.ts).limit(100_000).tuples())

    def cooldown_of(self, rule_id: Any, key: str) -> int | None:
        """When ``rule_id`` last ran for ``key`` (as stored), else None."""
        row = self._m.RuleCooldown
        with self._read():
            return row.select(row.fired_ms).where((row.rule_id == rule_id) & (row.key == key)).scalar()

    def prune(self, cooldowns_before_ms: int, keep_cooldowns: int, streams: Iterable[tuple[str, str]] = (),
              keep_entries: int = 0) -> int:
        """Forget cooldowns that ran before ``cooldowns_before_ms``, all but the newest ``keep_cooldowns``,
        and all but the newest ``keep_entries`` window entries of each ``(brand, stream)``."""
        row, entry = self._m.RuleCooldown, self._m.WindowEntry
        with self._write():
            gone = row.delete().where(row.fired_ms < cooldowns_before_ms).execute()
            cut = row.select(row.fired_ms).order_by(row.fired_ms.desc()).offset(keep_cooldowns).limit(1).scalar()
            if cut is not None:
                gone += row.delete().where(row.fired_ms <= cut).execute()
            for brand, stream in streams:
                of_stream = (entry.brand == brand) & (entry.stream == stream)
                cut = (entry.select(entry.ts).where(of_stream).order_by(entry.ts.desc())
                       .offset(keep_entries).limit(1).scalar())
                if cut is not None:
                    gone += entry.delete().where(of_stream & (entry.ts <= cut)).execute()
            return gone
