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
