"""What every repository shares: its database, its store's models, the clock, the two blocks."""

from __future__ import annotations

import time
from collections.abc import Callable

import peewee

from brokerflow.errors import ValidationFailed
from brokerflow.storage.db import read_block, write_block
from brokerflow.storage.models import Models

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    """Unix milliseconds now: the default clock of a store (tests pass their own)."""
    return time.time_ns() // 1_000_000


def is_int(value: object) -> bool:
    """An int that is not a bool (``True`` is an int to Python, never an id to us)."""
    return isinstance(value, int) and not isinstance(value, bool)


def invalid(path: str, message: str, text: str | None = None) -> ValidationFailed:
    """A one-problem ValidationFailed; its text defaults to ``"path: message"``."""
    return ValidationFailed(text or f"{path}: {message}", details=[{"path": path, "message": message}])


class Repository:
    """Base of the repositories: each public method runs in exactly one ``atomic()`` block."""

    def __init__(self, db: peewee.Database, models: Models, clock: Clock) -> None:
        self._db = db
        self._m = models
        self._clock = clock

    def _write(self):
        return write_block(self._db)

    def _read(self):
        return read_block(self._db)

    def _trim_batch(self, model: type[peewee.Model], time_column: peewee.Field, before_ms: int, after_id: int,
                    limit: int) -> tuple[int, int | None]:
        """Delete the rows older than ``before_ms`` among the next ``limit`` ids after ``after_id``.

        Walks the primary key (ids grow with time; no index on the time column, so the writers
        pay for none): one short transaction per call, so a writer waits for at most one small
        delete. Returns ``(rows deleted, last id looked at)``; the walk ends where a batch holds
        no old row (``(0, ...)``) or no row at all (``(0, None)``).
        """
        key = model._meta.primary_key
        with self._write():
            rows = list(model.select(key, time_column).where(key > after_id).order_by(key).limit(limit).tuples())
            old = [row_id for row_id, at in rows if at is not None and at < before_ms]
            if old:
                model.delete().where(key.in_(old)).execute()
        return len(old), (rows[-1][0] if rows else None)
