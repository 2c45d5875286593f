"""The event history: external events of a trigger are kept, echoes, garbage and old events are not."""

from __future__ import annotations

import threading
from dataclasses import replace

import msgpack

from brokerflow.actors.history import EventHistory
from brokerflow.workflow.events import Event
from tests.actors.conftest import NOW_MS, now_ms
from tests.conftest import wait_until

DEPOSIT = Event("trade.push", "EV_RECORD_ADD", {"order": 1, "login": 1001, "cmd": "OP_BALANCE_IN", "profit": 5.0},
                id="d1", ts_ms=NOW_MS - 1000, received_ms=NOW_MS)


def test_garbage_is_counted_and_the_rest_kept_without_echoes_or_old_events(store) -> None:
    history = EventHistory(store.history, now_ms, retention_hours=1)
    echo = replace(DEPOSIT, id="d2", depth=1)
    no_trigger = Event("rate.push", None, {"currency": "EUR", "usd": 1.1}, id="r1", received_ms=NOW_MS)
    too_old = replace(DEPOSIT, id="d0", ts_ms=NOW_MS - 2 * 3_600_000)
    later = replace(DEPOSIT, id="d3", ts_ms=NOW_MS - 500)
    history.add(("not an event",))
    history.add((DEPOSIT, echo, no_trigger, too_old))
    history.add((later, replace(DEPOSIT, id="bad", record={**DEPOSIT.record, "comment": object()})))
    assert history.flush_once() == 2
    [(_, ts, body)] = store.history.page("deposit.created", 0, NOW_MS, None, 10)
    assert ts == NOW_MS - 1000
    assert msgpack.unpackb(body, raw=False) == [[NOW_MS - 1000, "trade.push", "EV_RECORD_ADD", DEPOSIT.record, "d1"],
                                                [NOW_MS - 500, "trade.push", "EV_RECORD_ADD", DEPOSIT.record, "d3"]]
    assert history.unstorable == 2  # the garbage and the record msgpack cannot hold
    assert history.flush_once() == 0


def test_the_history_thread_writes_what_it_is_handed_until_stopped(store) -> None:
    history = EventHistory(store.history, now_ms, retention_hours=1)
    stop = threading.Event()
    thread = threading.Thread(target=history.run, args=(stop,), daemon=True)
    thread.start()
    history.add((DEPOSIT,))
    wait_until(lambda: len(store.history.page("deposit.created", 0, NOW_MS, None, 10)) == 1)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
