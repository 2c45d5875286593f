"""The base every brokerflow actor derives from: per-message isolation and counters.

pykka stops an actor whose ``tell`` handler raises, and one poisoned message must never stop
the engine, so ``on_receive`` catches per message, logs it with context, counts it and goes on.
Replies travel as a ``concurrent.futures.Future`` inside the message (``reply``), so a failure
reaches the one caller that waits for it and nobody else.

Batches coalesce in the mailbox: when an actor takes a batch message (``EventBatch``,
``Evaluate``, ``JobBatch``, ``RunsFinished``) and more batches of the same kind wait right
behind it, it takes them too and handles them as one. A stage that falls behind thus works on
ever larger batches and sends its successors fewer, larger messages, instead of paying a
message hop per small batch; a stage that keeps up sees its batches one by one (no added
latency). Only contiguous messages of one kind merge, so the order of the mailbox holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pykka

from brokerflow.actors._pykka_inbox import Inbox, inbox_of, take_head
from brokerflow.actors.messages import Evaluate, EventBatch, JobBatch, RunsFinished

log = logging.getLogger("brokerflow.actors")


class ActorStats:
    """Counters one actor updates and the monitor reads (plain ints: safe under the GIL)."""

    __slots__ = ("name", "kind", "processed", "messages", "failed", "busy_ms", "pending", "active", "gauges",
                 "_inbox", "_ref")

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        self.processed = self.failed = 0
        self.messages = 0  # messages handled; processed / messages is the mean batch size
        self.busy_ms = 0.0
        self.pending = 0  # work accepted but outside the mailbox (e.g. webhooks on the pool)
        self.active = False  # a message is being handled right now (its mailbox may be empty)
        self.gauges: dict[str, int] = {}  # actor-specific figures (e.g. "active"); replaced whole, never mutated
        self._inbox: Inbox | None = None
        self._ref: Any = None  # the actor's pykka ref once started: ``/ready`` asks it whether it runs

    def alive(self) -> bool:
        """Started and not stopped (a cell whose actor never started counts as alive: nothing to ask)."""
        return self._ref is None or self._ref.is_alive()

    def mailbox(self) -> int:
        return self._inbox.qsize() if self._inbox is not None else 0

    def busy(self) -> bool:
        """Queued, being handled, or accepted and still running elsewhere (drain waits for it)."""
        return bool(self.active or self.pending or self.mailbox())

    def snapshot(self) -> dict[str, Any]:
        """The stats reply's actor entry (docs/protocol.md, "stats") plus ``mean_ms`` and the actor's own gauges."""
        mean = self.busy_ms / self.processed if self.processed else 0.0
        return {"name": self.name, "kind": self.kind, "mailbox": self.mailbox(),
                "processed": self.processed, "messages": self.messages, "failed": self.failed,
                "mean_ms": round(mean, 3),
                **self.gauges}


class StatsRegistry:
    """Where every actor's counters are found by ``MngGetStats``, SIGUSR1 and ``stats``."""

    def __init__(self) -> None:
        self._cells: dict[str, ActorStats] = {}

    def cell(self, name: str, kind: str) -> ActorStats:
        cell = self._cells.get(name)
        if cell is None:
            cell = self._cells[name] = ActorStats(name, kind)
        return cell

    def drop(self, name: str) -> None:
        self._cells.pop(name, None)

    def snapshot(self) -> list[dict[str, Any]]:
        return [cell.snapshot() for cell in sorted(self._cells.values(), key=lambda c: c.name)]

    def dead(self) -> list[str]:
        """Names of the actors that have stopped (``/ready`` answers 503 while there is one)."""
        return sorted(cell.name for cell in list(self._cells.values()) if not cell.alive())

    def busy(self) -> bool:
        """Is any actor's work queued, in hand or in flight?"""
        return any(cell.busy() for cell in list(self._cells.values()))


# Batch kinds that merge in a mailbox (each has one tuple field), and the most items one merged
# batch carries, so one message never holds an actor for long.
COALESCING = (EventBatch, Evaluate, JobBatch, RunsFinished)
COALESCE_MAX_ITEMS = 5000


def coalesce(first: Any, inbox: Inbox, limit: int = COALESCE_MAX_ITEMS) -> Any:
    """``first`` merged with the same-kind batches told to ``inbox`` right behind it.

    The first waiting batch always merges; later ones only while the merged batch stays within
    ``limit`` items. Reading the mailbox is ``actors._pykka_inbox``'s job (pykka internals).
    """
    kind = type(first)
    items = _items(first)
    if len(items) >= limit:
        return first
    total = -1  # items merged so far, -1 until the first waiting batch is taken

    def fits(message: Any) -> bool:
        nonlocal total
        if type(message) is not kind:
            return False
        size = len(_items(message))
        if total >= 0 and total + size > limit:
            return False
        total = (len(items) if total < 0 else total) + size
        return True

    taken = take_head(inbox, fits)
    if not taken:
        return first
    merged = list(items)
    for batch in taken:
        merged.extend(_items(batch))
    return kind(tuple(merged))


def _items(batch: Any) -> tuple:
    return batch.events if type(batch) is EventBatch else batch.items if type(batch) is Evaluate else batch.jobs


class SafeActor(pykka.ThreadingActor):
    """Dispatches messages by type to ``handlers`` and never lets one failure stop the actor."""

    kind = "actor"

    def __init__(self, name: str, stats: StatsRegistry) -> None:
        super().__init__()
        self.name = name
        self.cell = stats.cell(name, self.kind)
        self.handlers: dict[type, Callable[[Any], Any]] = {}

    def on_start(self) -> None:
        self.cell._inbox = inbox_of(self)
        self.cell._ref = self.actor_ref

    def on_receive(self, message: Any) -> Any:
        started = time.perf_counter()
        self.cell.active = True
        if type(message) in COALESCING:
            message = coalesce(message, inbox_of(self))
        try:
            handler = self.handlers.get(type(message))
            if handler is None:
                raise TypeError(f"{self.name} has no handler for {type(message).__name__}")
            return handler(message)
        except Exception as exc:  # noqa: BLE001 - isolation is the point of this class
            self.cell.failed += 1
            log.exception("%s failed on %s", self.name, type(message).__name__)
            reply = getattr(message, "reply", None)
            if isinstance(reply, Future) and not reply.done():
                reply.set_exception(exc)
            return None
        finally:
            self.cell.processed += _size(message)
            self.cell.messages += 1
            self.cell.busy_ms += (time.perf_counter() - started) * 1000.0
            self.cell.active = False

    def inbox_empty(self) -> bool:
        return inbox_of(self).empty()


def _size(message: Any) -> int:
    """How many items a message carries (a batch counts its events); garbage counts as one."""
    try:
        size = getattr(message, "size", 1)
    except Exception:  # noqa: BLE001 - a hostile message must not break the counting
        return 1
    return size if isinstance(size, int) and not isinstance(size, bool) else 1
