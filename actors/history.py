"""The event history of backtests: every processed external event, kept ``--event-retention-hours``.

The router tells this actor each batch it took (one message per batch, nothing per event on
its own thread); here each event that maps to a trigger becomes one compact row ``(ts, trigger,
JSON of topic, event, record, id)`` and rows are written in multi-row statements when the
mailbox is empty or ``batch_rows`` are waiting. Echoes of our own changes are not kept: a
backtest replays what the outside world sent. Rows older than the retention are deleted about
once a minute. Storage down: rows wait, up to ``MAX_PENDING``; past it the oldest are given up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import Flush, RetainEvents
from brokerflow.actors.router import is_internal
from brokerflow.storage.models import dumps
from brokerflow.workflow.triggers import map_trigger

log = logging.getLogger("brokerflow.history")

MAX_PENDING = 200_000
PRUNE_EVERY_MS = 60_000


def history_row(event: Any) -> tuple[int, str, str] | None:
    """The stored row of a processed event, or None for one a backtest never replays."""
    if event.depth or is_internal(event):
        return None
    trigger = map_trigger(event)
    if trigger is None:
        return None
    body = {"topic": event.topic, "event": event.event, "record": event.record, "id": event.key}
    return event.ts_ms or event.received_ms, trigger, dumps(body)


class HistoryActor(SafeActor):
    kind = "history"

    def __init__(self, stats: StatsRegistry, repo: Any, now_ms: Callable[[], int], retention_hours: float,
                 batch_rows: int = 2000) -> None:
        super().__init__("history", stats)
        self.repo, self.now_ms, self.batch_rows = repo, now_ms, batch_rows
        self.retention_ms = int(retention_hours * 3_600_000)
        self.pending: list[tuple[int, str, str]] = []
        self.unstorable = 0
        self._pruned_at = 0
        self.handlers = {RetainEvents: self.on_events, Flush: self.on_flush}

    def on_events(self, message: RetainEvents) -> None:
        append = self.pending.append
        for event in message.events:
            try:
                row = history_row(event)
            except (TypeError, ValueError):  # a record JSON cannot hold: never replayable
                self.unstorable += 1
                continue
            if row is not None:
                append(row)
        if len(self.pending) >= self.batch_rows or self.inbox_empty():
            self.flush()

    def on_flush(self, message: Flush) -> None:
        self.flush()
        if message.reply is not None:
            message.reply.set_result(True)

    def flush(self) -> None:
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
        now = self.now_ms()
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
