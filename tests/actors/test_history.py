"""The event history actor: external events of a trigger are kept, echoes and garbage are not."""

from __future__ import annotations

from dataclasses import replace

import msgpack

from brokerflow.actors.history import HistoryActor
from brokerflow.actors.messages import Flush, RetainEvents
from brokerflow.workflow.events import Event
from tests.actors.conftest import NOW_MS, cell, now_ms
from tests.conftest import wait_until

DEPOSIT = Event("trade.push", "EV_RECORD_ADD", {"order": 1, "login": 1001, "cmd": "OP_BALANCE_IN", "profit": 5.0},
                id="d1", ts_ms=NOW_MS - 1000, received_ms=NOW_MS)


def test_garbage_is_counted_and_the_next_batch_is_kept_without_echoes_or_old_events(stats, store) -> None:
    actor = HistoryActor.start(stats, store.history, now_ms, retention_hours=1)
    actor.tell(RetainEvents(("not an event",)))
    echo = replace(DEPOSIT, id="d2", depth=1)
    no_trigger = Event("rate.push", None, {"currency": "EUR", "usd": 1.1}, id="r1", received_ms=NOW_MS)
    too_old = replace(DEPOSIT, id="d0", ts_ms=NOW_MS - 2 * 3_600_000)
    actor.tell(RetainEvents((DEPOSIT, echo, no_trigger, too_old)))
    actor.tell(Flush())  # written in large batches: a tick (the engine's) writes a quiet one
    wait_until(lambda: len(store.history.page("deposit.created", 0, NOW_MS, None, 10)) == 1)
    [(_, ts, body)] = store.history.page("deposit.created", 0, NOW_MS, None, 10)
    assert ts == NOW_MS - 1000
    assert msgpack.unpackb(body, raw=False) == ["trade.push", "EV_RECORD_ADD", DEPOSIT.record, "d1"]
    assert cell(stats, "history")["failed"] == 1
