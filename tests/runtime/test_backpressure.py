"""Backpressure: a router that falls behind stops the ingress reading; nothing is lost.

The router is held the way the management API waits on it: a ``ReferenceUpdate`` whose reply
future, once the router sets it, runs a callback on the router's own thread that waits for the
test to release it. Nothing of the engine is replaced.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from brokerflow.actors.messages import ReferenceUpdate
from tests.conftest import wait_until
from tests.runtime.conftest import notify

DEPOSIT = {"login": 1001, "cmd": "OP_BALANCE_IN", "profit": 10.0}


def hold_router(runtime) -> threading.Event:
    """Block the router's thread until the returned event is set."""
    release, held = threading.Event(), threading.Event()
    reply: Future = Future()

    def block(_future: Future) -> None:
        held.set()
        release.wait(30)

    reply.add_done_callback(block)
    runtime.engine.router.tell(ReferenceUpdate("rate", {"currency": "XTS", "usd": 1.0}, reply=reply))
    assert held.wait(5), "the router never took the update"
    return release


def test_a_held_router_stops_the_ingress_reading_and_nothing_is_lost(make_runtime):
    runtime = make_runtime(ingress_max_inflight=2)
    rule = runtime.rule("deposit.created", [notify("{{trade.order}}", manager_id=7)])
    release = hold_router(runtime)
    try:
        for order in (1, 2):  # two events, a batch each: the ceiling
            runtime.publish("trade.push", {**DEPOSIT, "order": order})
            wait_until(lambda order=order: runtime.stats()["bus"]["received"] == order)
        for order in range(3, 21):
            runtime.publish("trade.push", {**DEPOSIT, "order": order})
        wait_until(lambda: runtime.stats()["bus"]["paused"] == 1)
        # A negative outcome needs a window: a reading ingress polls every 100 ms, so in 0.5 s
        # it would have read the 18 queued frames several times over.
        time.sleep(0.5)  # the window a negative outcome needs (see above)
        bus = runtime.stats()["bus"]
        assert bus["received"] == 2, bus
        router = next(a for a in runtime.stats()["actors"] if a["name"] == "router")
        assert router["mailbox"] == 2  # the two batches, and nothing more, wait for it
    finally:
        release.set()
    runtime.settle()
    orders = sorted(int(n["message"]) for n in runtime.notifications() if n["rule_id"] == rule["id"])
    assert orders == list(range(1, 21))
    assert runtime.stats()["bus"]["received"] == 20
