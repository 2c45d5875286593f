"""What ``actors._pykka_inbox`` assumes about pykka's internals, checked on the installed pykka.

Coalescing reads an actor's mailbox, which pykka does not offer publicly. If a pykka upgrade
changes any of these, this file fails with a message naming the assumption, instead of the
engine quietly losing coalescing (or, worse, taking a message an ``ask`` waits for).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from importlib.metadata import version

import pykka
import pytest

from brokerflow.actors._pykka_inbox import inbox_of, take_head
from brokerflow.actors.base import coalesce
from brokerflow.actors.messages import EventBatch, ReloadRules
from brokerflow.workflow.events import Event
from tests.conftest import wait_until

UPGRADE = f"pykka {version('pykka')} changed an internal that actors/_pykka_inbox.py relies on: "


class Held(pykka.ThreadingActor):
    """Holds its first message until ``gate`` opens, so later messages wait in its inbox."""

    def __init__(self, gate: threading.Event, started: list[Held]) -> None:
        super().__init__()
        self.gate, self.started = gate, started

    def on_receive(self, message: object) -> object:
        self.started.append(self)
        self.gate.wait(5)
        return message


@pytest.fixture
def held() -> Iterator[tuple[pykka.ActorRef, Held]]:
    gate, started = threading.Event(), []
    ref = Held.start(gate, started)
    ref.tell("in hand")
    wait_until(lambda: started)  # the first message is in hand: what follows waits in the inbox
    yield ref, started[0]
    gate.set()
    ref.stop()


def test_the_inbox_is_a_queue_with_a_mutex_and_a_deque(held):
    _ref, actor = held
    inbox = inbox_of(actor)
    assert isinstance(inbox, queue.Queue), UPGRADE + f"actor_inbox is a {type(inbox).__name__}, not a queue.Queue"
    assert hasattr(inbox, "mutex") and hasattr(inbox, "queue"), UPGRADE + "actor_inbox lost .mutex or .queue"
    assert hasattr(inbox.queue, "popleft"), UPGRADE + "actor_inbox.queue is no longer a deque"


def test_a_told_envelope_has_no_reply_and_an_asked_one_has(held):
    ref, actor = held
    inbox = inbox_of(actor)
    ref.tell("told")
    ref.ask("asked", block=False)
    wait_until(lambda: inbox.qsize() == 2)
    told_envelope, asked_envelope = list(inbox.queue)
    for envelope in (told_envelope, asked_envelope):
        assert hasattr(envelope, "message") and hasattr(envelope, "reply_to"), (
            UPGRADE + f"an inbox item ({type(envelope).__name__}) has no .message/.reply_to")
    assert (told_envelope.message, asked_envelope.message) == ("told", "asked"), UPGRADE + "envelope.message moved"
    assert told_envelope.reply_to is None, UPGRADE + "a told message's envelope has a reply_to"
    assert asked_envelope.reply_to is not None, UPGRADE + "an asked message's envelope has no reply_to"


def test_take_head_takes_told_messages_in_order_and_stops_at_an_ask_or_a_no(held):
    ref, actor = held
    inbox = inbox_of(actor)
    for message in ("a", "b", "stop", "c"):
        ref.tell(message)
    asked = ref.ask("d", block=False)
    ref.tell("e")
    wait_until(lambda: inbox.qsize() == 6)
    assert take_head(inbox, lambda message: message != "stop") == ["a", "b"]
    assert take_head(inbox, lambda message: message == "stop") == ["stop"]
    assert take_head(inbox, lambda message: True) == ["c"]  # the ask behind "c" is never taken
    assert take_head(inbox, lambda message: True) == []
    assert [envelope.message for envelope in inbox.queue] == ["d", "e"]
    assert inbox.qsize() == 2
    actor.gate.set()
    assert asked.get(timeout=5) == "d"  # the ask left in the inbox is still answered


def _batch(*ids: str) -> EventBatch:
    return EventBatch(tuple(Event("trade.push", "EV_RECORD_ADD", {}, id=event_id) for event_id in ids))


def _ids(batch: EventBatch) -> list[str]:
    return [event.id for event in batch.events]


def test_coalesce_takes_the_first_waiting_batch_then_only_within_the_limit(held):
    ref, actor = held
    inbox = inbox_of(actor)
    for batch in (_batch("b", "c", "d"), _batch("e"), _batch("f", "g"), _batch("h"), ReloadRules({}), _batch("i")):
        ref.tell(batch)
    wait_until(lambda: inbox.qsize() == 6)
    # "a" plus "b c d" is over the limit of 3, yet the first waiting batch always merges.
    assert _ids(coalesce(_batch("a"), inbox, limit=3)) == ["a", "b", "c", "d"]
    assert _ids(coalesce(_batch("x"), inbox, limit=4)) == ["x", "e", "f", "g"]  # "h" would make 5
    assert _ids(coalesce(_batch("y", "z"), inbox, limit=2)) == ["y", "z"]  # full already: nothing taken
    assert _ids(coalesce(_batch("w"), inbox, limit=9)) == ["w", "h"]  # another kind stops it
    assert [type(envelope.message) for envelope in inbox.queue] == [ReloadRules, EventBatch]
