"""SafeActor: one message that raises is counted, the actor lives on and serves the next."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass

import pytest

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import EventBatch, ReloadRules
from brokerflow.workflow.events import Event
from tests.actors.conftest import cell
from tests.conftest import wait_until


@dataclass(frozen=True)
class Work:
    value: int
    reply: Future | None = None

    @property
    def size(self) -> int:
        return 3


class Hostile:
    @property
    def size(self) -> int:
        raise RuntimeError("no size for you")


class Echo(SafeActor):
    kind = "echo"

    def __init__(self, stats: StatsRegistry, gate: threading.Event | None = None) -> None:
        super().__init__("echo", stats)
        self.gate = gate
        self.handlers = {Work: self.on_work}

    def on_work(self, message: Work) -> int:
        if self.gate is not None:
            self.gate.wait(5)
        if message.value < 0:
            raise ValueError("negative")
        if message.reply is not None:
            message.reply.set_result(message.value * 2)
        return message.value * 2


def test_garbage_and_a_raising_handler_are_counted_and_the_next_message_served():
    stats = StatsRegistry()
    ref = Echo.start(stats)
    ref.tell("garbage")
    ref.tell(Hostile())
    failing: Future = Future()
    ref.tell(Work(-1, failing))
    with pytest.raises(ValueError):
        failing.result(timeout=5)  # the one waiting caller learns why
    assert ref.ask(Work(21), timeout=5) == 42
    snapshot = cell(stats, "echo")
    assert (snapshot["failed"], snapshot["processed"]) == (3, 1 + 1 + 3 + 3)
    assert set(snapshot) == {"name", "kind", "mailbox", "processed", "messages", "failed", "mean_ms"}
    assert snapshot["messages"] == 4
    assert snapshot["kind"] == "echo"


def test_an_actor_in_the_middle_of_a_message_is_busy_even_with_an_empty_mailbox():
    stats = StatsRegistry()
    gate = threading.Event()
    ref = Echo.start(stats, gate)
    assert not stats.busy()
    ref.tell(Work(1))
    wait_until(lambda: cell(stats, "echo")["mailbox"] == 0)
    assert stats.busy()
    gate.set()
    wait_until(lambda: not stats.busy())
    assert cell(stats, "echo")["processed"] == 3


class Batches(SafeActor):
    """Records each batch it handles; the first one waits on a gate so a backlog can build."""

    kind = "batches"

    def __init__(self, stats: StatsRegistry, gate: threading.Event, seen: list) -> None:
        super().__init__("batches", stats)
        self.gate, self.seen = gate, seen
        self.handlers = {EventBatch: self.on_batch, ReloadRules: self.on_reload}

    def on_batch(self, message: EventBatch) -> None:
        self.gate.wait(5)
        self.seen.append([event.id for event in message.events])

    def on_reload(self, message: ReloadRules) -> None:
        self.seen.append("reload")


def _batch(*ids: str) -> EventBatch:
    return EventBatch(tuple(Event("trade.push", "EV_RECORD_ADD", {}, id=event_id) for event_id in ids))


def test_batches_waiting_behind_each_other_are_handled_as_one_in_mailbox_order():
    stats = StatsRegistry()
    gate = threading.Event()
    seen: list = []
    ref = Batches.start(stats, gate, seen)
    ref.tell(_batch("a"))
    wait_until(lambda: cell(stats, "batches")["mailbox"] == 0)  # "a" is in hand, held by the gate
    ref.tell(_batch("b", "c"))
    ref.tell(_batch("d"))
    ref.tell(ReloadRules({}))  # another kind: never merged, never overtaken
    ref.tell(_batch("e"))
    gate.set()
    wait_until(lambda: not stats.busy())
    assert seen == [["a"], ["b", "c", "d"], "reload", ["e"]]
    snapshot = cell(stats, "batches")
    assert (snapshot["processed"], snapshot["messages"]) == (6, 4)
    ref.stop()
