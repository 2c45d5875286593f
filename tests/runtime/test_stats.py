"""``MngGetStats`` on a running engine: the stats reply's shape and counters that add up.

Beyond the protocol, each actor shows ``mean_ms`` (mean handling time per item), the bus
shows ``skipped_no_brand``, ``loops_stopped`` and ``reference_unstored``, and the process workers show their gauges.
"""

from __future__ import annotations

import msgpack

from brokerflow.api.client import ApiClient
from tests.runtime.conftest import notify

ACTOR_KEYS = {"name", "kind", "mailbox", "processed", "messages", "failed", "mean_ms"}
PROCESS_GAUGES = {"active", "activations", "passivations"}
WEBHOOK_GAUGES = {"deliveries_success", "deliveries_failed"}
BUS_KEYS = {"received", "malformed", "duplicates", "gaps", "skipped_no_brand", "loops_stopped",
            "no_trigger", "reference_unstored", "paused", "disconnects", "replayed", "gaps_filled",
            "gaps_open", "replay_lost", "replay_errors"}
RUN_KEYS = {"logged", "success", "failed", "skipped", "suppressed"}


def check_shape(body):
    assert set(body) == {"actors", "bus", "runs", "webhooks", "uptime_s"}
    assert set(body["bus"]) == BUS_KEYS and set(body["runs"]) == RUN_KEYS
    assert all(isinstance(v, int) for v in (*body["bus"].values(), *body["runs"].values()))
    assert isinstance(body["uptime_s"], (int, float)) and body["uptime_s"] >= 0
    for actor in body["actors"]:
        extra = set(actor) - ACTOR_KEYS
        assert ACTOR_KEYS <= set(actor), actor
        if actor["kind"] == "webhook":  # the actor counts deliveries by outcome; the retry poller has none
            assert extra <= WEBHOOK_GAUGES | {"deliveries_retrying"}, actor
            assert actor["name"] != "webhook" or WEBHOOK_GAUGES <= extra, actor
        else:
            assert extra == (PROCESS_GAUGES if actor["kind"] == "process" else set()), actor
        assert all(isinstance(actor[k], int) for k in ("mailbox", "processed", "failed"))


def test_stats_have_the_protocols_shape_over_msgpack_and_json(runtime):
    body = runtime.stats()
    check_shape(body)
    kinds = {actor["name"]: actor["kind"] for actor in body["actors"]}
    assert {name: kinds.get(name) for name in ("router", "notifier", "customer", "kyc", "webhook", "runlog")} == {
        "router": "router", "notifier": "notifier", "customer": "customer", "kyc": "kyc",
        "webhook": "webhook", "runlog": "runlog"}
    with ApiClient(runtime.engine.api_endpoint, runtime.api.token, as_json=True, context=runtime.context) as client:
        check_shape(client.call("MngGetStats"))


def test_the_counters_add_up(runtime):
    ok = runtime.rule("deposit.created", [notify("ok", manager_id=7)],
                      [{"field": "amount_usd", "op": ">=", "value": 1}])
    bad = runtime.rule("withdrawal.created", [{"type": "kyc.require_step", "params": {"step_code": "NOPE"}}])
    runtime.deposit(1001, 10)                                               # success
    retry = {"order": 9, "login": 1002, "cmd": "OP_BALANCE_IN", "profit": 10.0}
    runtime.publish("trade.push", retry, id="same", source="retrying")      # success
    runtime.publish("trade.push", retry, id="same", source="other")         # duplicate (by id)
    runtime.deposit(1004, 10)                                               # skipped: no JPY rate
    runtime.publish("trade.push", {"order": 1, "login": 1001, "cmd": "OP_BALANCE_OUT", "profit": -1.0})  # failed
    runtime.deposit(3002, 10)                                               # no brand
    runtime.publish_raw([b"trade.push", b"\x00junk"])                       # malformed
    runtime.publish("trade.push", {"order": 2, "login": 1001, "cmd": "OP_BUY"}, source="crm")  # fires nothing
    with runtime.other_publisher("crm", first_seq=5) as skipping:          # a gap: seq 2..4
        skipping.publish("trade.push", {"order": 3, "login": 1001, "cmd": "OP_BALANCE_IN", "profit": 1.0},
                         event="EV_RECORD_ADD")                             # success
        runtime.sent += 1
        runtime.settle()
    body = runtime.stats()
    check_shape(body)
    assert body["bus"] == {"received": 9, "malformed": 1, "duplicates": 1, "gaps": 1,
                           "skipped_no_brand": 1, "loops_stopped": 0, "no_trigger": 0, "reference_unstored": 0,
                           "paused": 0, "disconnects": 0, "replayed": 0, "gaps_filled": 0, "gaps_open": 0,
                           "replay_lost": 0, "replay_errors": 0}
    assert body["runs"] == {"logged": 5, "success": 3, "failed": 1, "skipped": 1, "suppressed": 0}
    assert len(runtime.runs(rule_id=ok["id"])) == 4 and len(runtime.runs(rule_id=bad["id"])) == 1
    actors = {actor["name"]: actor for actor in body["actors"]}
    assert actors["router"]["processed"] >= 8  # events (and reference updates) it routed
    assert actors["rules:alpha"]["processed"] >= 7
    assert (actors["notifier"]["processed"], actors["kyc"]["processed"], actors["runlog"]["processed"]) == (3, 1, 5)
    assert all(actor["failed"] == 0 and actor["mailbox"] == 0 for actor in body["actors"])
    assert actors["notifier"]["mean_ms"] > 0


def test_the_runtime_counts_an_actor_failure(runtime):
    runtime.engine.router.tell("garbage")
    runtime.engine.router.tell(msgpack)  # anything that is not a message
    rule = runtime.rule("deposit.created", [notify("still works", manager_id=7)])
    runtime.deposit(1001, 10)
    assert runtime.wait_run(rule)["status"] == "success"
    router = next(a for a in runtime.stats()["actors"] if a["name"] == "router")
    assert router["failed"] == 2
