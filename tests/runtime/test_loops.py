"""The loop bound: changes that come back as events stop at a documented causal depth.

A customer change is echoed to the router as a ``customer.updated`` one level deeper
(and a CRM that applies our ``customer.changed`` echoes it once more on the bus). Events
deeper than ``Settings.loop_depth_limit`` (3) run no rules; each is counted in
``bus.loops_stopped`` and logged as a warning.
"""

from __future__ import annotations

import threading

from brokerflow.bus.publisher import Publisher
from tests.conftest import wait_until

FLIP = [({"field": "customer.risk_level", "op": "==", "value": "low"}, "high"),
        ({"field": "customer.risk_level", "op": "==", "value": "high"}, "low")]


def flip_flop_rules(runtime):
    return [runtime.rule("customer.updated", [{"type": "customer.set_risk_level", "params": {"risk_level": to}}],
                         [condition], name=f"to {to}") for condition, to in FLIP]


def test_a_rule_pair_that_flips_a_field_stops_at_the_loop_bound(runtime, caplog):
    to_high, to_low = flip_flop_rules(runtime)
    runtime.publish("customer.push", {"id": 501, "email": "al@new.example.com"}, event="EV_RECORD_UPDATE")
    wait_until(lambda: runtime.stats()["bus"]["loops_stopped"] == 1)
    runtime.settle()
    runs = sorted(runtime.runs(), key=lambda run: run["id"])
    # Depth 0 (the CRM's push) .. depth 3 run rules; the echo at depth 4 does not.
    assert [run["rule_id"] for run in runs] == [to_high["id"], to_low["id"], to_high["id"], to_low["id"]]
    assert [run["event_id"] for run in runs][1:] == [f"run:{run['id']}:0" for run in runs[:-1]]
    assert all(run["status"] == "success" for run in runs)
    assert runtime.stats()["bus"]["loops_stopped"] == 1
    assert "loop bound" in caplog.text
    assert len(runtime.outbound.of("customer.changed")) == 4
    assert runtime.call("MngGetCustomers", {"id": 501})["records"][0]["risk_level"] == "low"


def test_the_crms_echo_of_our_change_keeps_its_causal_depth(runtime):
    """A CRM that republishes every change as a plain customer.push must not restart the chain."""
    flip_flop_rules(runtime)
    stop = threading.Event()
    echoed = []

    def crm() -> None:
        with Publisher(runtime.events_endpoint, source="crm-echo", context=runtime.context, linger_ms=0) as pub:
            pub.wait_subscribed(timeout_s=5)
            while not stop.is_set():
                for change in runtime.outbound.of("customer.changed")[len(echoed):]:
                    pub.publish("customer.push", {"id": change["customer_id"], **change["changes"]},
                                event="EV_RECORD_UPDATE")
                    echoed.append(change)
                stop.wait(0.005)

    thread = threading.Thread(target=crm, daemon=True)
    thread.start()
    try:
        runtime.publish("customer.push", {"id": 501, "email": "al@new.example.com"}, event="EV_RECORD_UPDATE")
        wait_until(lambda: runtime.stats()["bus"]["loops_stopped"] >= 2)
        # Quiet means: every change echoed, every echo read, nothing in flight, twice in a row.
        wait_until(lambda: _quiet(runtime, echoed), timeout_s=10)
    finally:
        stop.set()
        thread.join(timeout=5)
    runs = runtime.runs()
    assert 4 <= len(runs) <= 16, len(runs)  # bounded by the depth, whatever the interleaving
    assert len(echoed) == len(runtime.outbound.of("customer.changed"))


def _quiet(runtime, echoed) -> bool:
    for _ in range(2):
        changes = len(runtime.outbound.of("customer.changed"))
        received = runtime.stats()["bus"]["received"]
        if len(echoed) != changes or received != runtime.sent + changes or not runtime.engine.drain(0.5):
            return False
    return len(runtime.outbound.of("customer.changed")) == len(echoed)
