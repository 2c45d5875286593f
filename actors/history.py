"""The event history of backtests: every processed external event, kept ``--event-retention-hours``.

The router tells this actor each batch it took (one message per batch, nothing per event on
its own thread); here each event that maps to a trigger becomes one compact row ``(ts, trigger,
msgpack of topic, event, record, id)``. Rows are written in large multi-row statements: when
``batch_rows`` wait, or when the mailbox is empty and ``FLUSH_INTERVAL_MS`` have passed since
the last write, or on ``Flush`` (the engine ticks one every ``FLUSH_INTERVAL_MS``; a backtest
asks for one first). Few large writes keep SQLite's one write lock free for the run log; a
crash loses at most the rows of the last interval, which only backtests read. Echoes of our
own changes are not kept: a backtest replays what the outside world sent. Rows older than the
retention are deleted about once a minute. Storage down: rows wait, up to ``MAX_PENDING``;
past it the oldest are given up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgpack

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import Flush, RetainEvents
from brokerflow.actors.router import is_internal
from brokerflow.workflow.triggers import map_trigger

log = logging.getLogger("brokerflow.history")

MAX_PENDING = 200_000
PRUNE_EVERY_MS = 60_000
FLUSH_INTERVAL_MS = 500


def history_row(event: Any, pack: Callable[[Any], bytes]) -> tuple[int, str, bytes] | None:
    """The stored row of a processed event, or None for one a backtest never replays."""
    if event.depth or is_internal(event):
        return None
    trigger = map_trigger(event)
    if trigger is None:
        return None
    return event.ts_ms or event.received_ms, trigger, pack((event.topic, event.event, event.record, event.key))


class HistoryActor(SafeActor):
    kind = "history"

    def __init__(self, stats: StatsRegistry, repo: Any, now_ms: Callable[[], int], retention_hours: float,
                 batch_rows: int = 5000) -> None:
        super().__init__("history", stats)
        self.repo, self.now_ms, self.batch_rows = repo, now_ms, batch_rows
        self.retention_ms = int(retention_hours * 3_600_000)
        self.pending: list[tuple[int, str, bytes]] = []
        self.unstorable = 0
        self._pruned_at = self._flushed_at = 0
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self.handlers = {RetainEvents: self.on_events, Flush: self.on_flush}

    def on_events(self, message: RetainEvents) -> None:
        append, pack = self.pending.append, self._pack
        oldest = self.now_ms() - self.retention_ms  # an event older than the retention is not kept at all
        for event in message.events:
            try:
                row = history_row(event, pack)
            except (TypeError, ValueError):  # a record msgpack cannot hold: never replayable
                self.unstorable += 1
                continue
            if row is not None and row[0] >= oldest:
                append(row)
        if len(self.pending) >= self.batch_rows or (
                self.inbox_empty() and self.now_ms() - self._flushed_at >= FLUSH_INTERVAL_MS):
            self.flush()

    def on_flush(self, message: Flush) -> None:
        self.flush()
        if message.reply is not None:
            message.reply.set_result(True)

    def flush(self) -> None:
        now = self._flushed_at = self.now_ms()
        if self.pending:
            try:
                self.repo.write(self.pending)
            except Exception:
                if len(self.pending) > MAX_PENDING:
                    log.error("event history: storage unavailable, %d events given up",
                              len(self.pending) - MAX_PENDING)
                    self.pending = self.pending[-MAX_PENDING:]
                raise  # kept for the next flush; SafeActor logs and counts it
            self.pending = []
        if now - self._pruned_at >= PRUNE_EVERY_MS:
            self._pruned_at = now
            gone = self.repo.prune(now - self.retention_ms)
            if gone:
                log.info("event history: %d events older than %.1f h forgotten", gone, self.retention_ms / 3.6e6)

    def on_stop(self) -> None:
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - stopping goes on; the log says what was lost
            log.exception("event history: the last %d events could not be stored", len(self.pending))
