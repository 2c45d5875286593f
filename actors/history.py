"""The event history of backtests: every processed external event, kept ``--event-retention-hours``.

The router hands each batch it took to ``EventHistory.add`` — one ``deque.append`` of the
batch's tuple, atomic under the GIL, so the router's thread (the engine's busiest) pays no actor
message and no encoding. A thread of the engine calls ``flush_once`` every ``FLUSH_INTERVAL_MS``
(a backtest calls it too, so it sees every event processed so far): the events that map to a
trigger are grouped by it and each group is written as one chunk row, the events one msgpack
list (``storage.repositories.history``). Packing a list is one C call, and a few rows per write
keep SQLite's one write lock free for the run log; a crash loses at most the last interval's
events, which only backtests read. Echoes of our own changes are not kept (a backtest replays
what the outside world sent), nor events older than the retention. Chunks past the retention
are deleted about once a minute. Storage down: events wait, up to ``MAX_PENDING``; past it the
oldest are given up.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from brokerflow.actors.router import is_internal
from brokerflow.workflow.triggers import map_trigger

log = logging.getLogger("brokerflow.history")

MAX_PENDING = 200_000
PRUNE_EVERY_MS = 60_000
FLUSH_INTERVAL_MS = 500


CHUNK_EVENTS = 5000  # events in one stored row at most


def history_entry(event: Any) -> tuple[str, list[Any]] | None:
    """``(trigger, [ts, topic, event, record, id])`` of a processed event, or None for one a
    backtest never replays (an echo of our own change, no trigger)."""
    if event.depth or is_internal(event):
        return None
    trigger = map_trigger(event)
    if trigger is None:
        return None
    return trigger, [event.ts_ms or event.received_ms, event.topic, event.event, event.record, event.key]


class EventHistory:
    """Batches handed over by the router, written by ``flush_once`` (the engine's history thread)."""

    def __init__(self, repo: Any, now_ms: Callable[[], int], retention_hours: float) -> None:
        self.repo, self.now_ms = repo, now_ms
        self.retention_ms = int(retention_hours * 3_600_000)
        self._batches: deque[Sequence[Any]] = deque()
        self._lock = threading.Lock()  # the history thread and a backtest may flush at once
        self._pending: list[tuple[int, int, str, int, bytes]] = []
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._pruned_at = 0
        self.unstorable = 0  # events whose rows could not be made (garbage, a record msgpack refuses)

    def add(self, events: Sequence[Any]) -> None:
        """Keep a processed batch for the next write (called on the router's thread: O(1))."""
        self._batches.append(events)

    def flush_once(self) -> int:
        """Write every batch handed over so far; returns the events written. Raises when storage fails
        (the chunks are kept for the next call)."""
        with self._lock:
            self._encode()
            written = sum(chunk[3] for chunk in self._pending)
            if self._pending:
                try:
                    self.repo.write(self._pending)
                except Exception:
                    self._bound()
                    raise
                self._pending = []
            self._prune()
            return written

    def _encode(self) -> None:
        """The handed-over batches as chunk rows, one per trigger (at most ``CHUNK_EVENTS`` each)."""
        batches = self._batches
        oldest = self.now_ms() - self.retention_ms  # an event older than the retention is not kept at all
        groups: dict[str, list[list[Any]]] = {}
        while batches:
            for event in batches.popleft():
                try:
                    entry = history_entry(event)
                except Exception:  # noqa: BLE001 - garbage: never replayable
                    self.unstorable += 1
                    continue
                if entry is not None and entry[1][0] >= oldest:
                    groups.setdefault(entry[0], []).append(entry[1])
        for trigger, entries in groups.items():
            for start in range(0, len(entries), CHUNK_EVENTS):
                self._chunk(trigger, entries[start:start + CHUNK_EVENTS])

    def _chunk(self, trigger: str, entries: list[list[Any]]) -> None:
        try:
            body = self._pack(entries)
        except Exception:  # noqa: BLE001 - a record msgpack refuses: pack one by one, drop that one
            kept = []
            for entry in entries:
                try:
                    self._pack(entry)
                    kept.append(entry)
                except Exception:  # noqa: BLE001
                    self.unstorable += 1
            if not kept:
                return
            entries, body = kept, self._pack(kept)
        times = [entry[0] for entry in entries]
        self._pending.append((min(times), max(times), trigger, len(entries), body))

    def _bound(self) -> None:
        waiting = sum(chunk[3] for chunk in self._pending)
        while waiting > MAX_PENDING and len(self._pending) > 1:
            waiting -= self._pending.pop(0)[3]
            log.error("event history: storage unavailable, the oldest waiting events given up")

    def _prune(self) -> None:
        now = self.now_ms()
        if now - self._pruned_at < PRUNE_EVERY_MS:
            return
        self._pruned_at = now
        gone = self.repo.prune(now - self.retention_ms)
        if gone:
            log.info("event history: %d events older than %.1f h forgotten", gone, self.retention_ms / 3.6e6)

    def run(self, stop: threading.Event) -> None:
        """The engine's history thread: a write every ``FLUSH_INTERVAL_MS`` until ``stop``."""
        while not stop.wait(FLUSH_INTERVAL_MS / 1000):
            self.flush_logged()

    def flush_logged(self) -> None:
        try:
            self.flush_once()
        except Exception:  # noqa: BLE001 - the next round retries; the rows are kept
            log.exception("event history: write failed; retrying at the next interval")
