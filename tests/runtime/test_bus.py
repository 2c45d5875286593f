"""The bus as producers use it: duplicates, gaps, malformed frames, reference pushes."""

from __future__ import annotations

import logging

import msgpack

from tests.conftest import wait_until
from tests.runtime.conftest import notify

DEPOSIT = {"login": 1001, "cmd": "OP_BALANCE_IN", "profit": 10.0}


def deposit_rule(runtime):
    return runtime.rule("deposit.created", [notify("{{trade.order}}", manager_id=7)])


def orders(runtime, rule):
    return sorted(int(n["message"]) for n in runtime.notifications() if n["rule_id"] == rule["id"])


def test_an_id_seen_before_is_processed_once(runtime):
    rule = deposit_rule(runtime)
    runtime.publish("trade.push", {**DEPOSIT, "order": 1}, id="dep-1")
    runtime.publish("trade.push", {**DEPOSIT, "order": 1}, id="dep-1")  # a retry: same id, next seq
    runtime.publish("trade.push", {**DEPOSIT, "order": 2}, id="dep-2")
    runtime.settle()
    assert orders(runtime, rule) == [1, 2]
    assert runtime.stats()["bus"]["duplicates"] == 1


def test_a_source_and_seq_seen_before_is_processed_once(runtime):
    rule = deposit_rule(runtime)
    runtime.publish("trade.push", {**DEPOSIT, "order": 1}, source="mt5")
    runtime.publish("trade.push", {**DEPOSIT, "order": 2}, source="mt5")
    with runtime.other_publisher("mt5", first_seq=2) as replay:  # a producer replaying seq 2
        replay.publish("trade.push", {**DEPOSIT, "order": 22}, event="EV_RECORD_ADD")
        runtime.sent += 1
        runtime.settle()
    assert orders(runtime, rule) == [1, 2]
    assert runtime.stats()["bus"]["duplicates"] == 1


def test_duplicates_are_recognised_across_a_restart(runtime):
    rule = deposit_rule(runtime)
    runtime.publish("trade.push", {**DEPOSIT, "order": 1}, id="dep-1", source="mt5")
    runtime.publish("trade.push", {**DEPOSIT, "order": 2}, source="mt5")
    runtime.settle()
    runtime.restart()
    with runtime.other_publisher("mt5", first_seq=3) as continued:
        continued.publish("trade.push", {**DEPOSIT, "order": 1}, event="EV_RECORD_ADD", id="dep-1")  # id seen
        continued.publish("trade.push", {**DEPOSIT, "order": 4}, event="EV_RECORD_ADD", id="dep-4")
        runtime.sent += 2
        runtime.settle()
    with runtime.other_publisher("mt5", first_seq=2) as replay:  # seq 2 was taken before the restart
        replay.publish("trade.push", {**DEPOSIT, "order": 2}, event="EV_RECORD_ADD")
        runtime.sent += 1
        runtime.settle()
    assert [run["event_id"] for run in runtime.runs(rule_id=rule["id"])] == ["dep-4", "mt5:2", "dep-1"]
    assert runtime.stats()["bus"]["duplicates"] == 2


def test_malformed_frames_between_valid_ones_are_counted_and_all_valid_ones_run(runtime, caplog):
    rule = deposit_rule(runtime)
    bad_frames = [
        [b"trade.push", b"\xc1 not msgpack"],
        [b"no.such.topic", msgpack.packb({"event": "EV_RECORD_ADD", "record": {"order": 1}})],
        [b"trade.push", msgpack.packb({"event": "EV_RECORD_ADD", "record": {"login": 1001}})],  # no order, cmd
        [b"trade.push", msgpack.packb({"event": "EV_RECORD_ADD",
                                       "record": {"order": "7", "login": 1001, "cmd": "OP_BALANCE_IN",
                                                  "comment": "password=hunter2"}})],
        [b"trade.push", msgpack.packb(["a", "list"])],
        [b"trade.push"],
        [b"trade.push", b"x", b"y"],
        [b"trade.push", msgpack.packb({"event": 5, "record": {}})],
    ]
    with caplog.at_level(logging.WARNING, logger="brokerflow.bus"):
        for index, frames in enumerate(bad_frames):
            runtime.publish("trade.push", {**DEPOSIT, "order": index})
            runtime.publish_raw(frames)
        runtime.publish("trade.push", {**DEPOSIT, "order": len(bad_frames)})
        runtime.settle()
    assert orders(runtime, rule) == list(range(len(bad_frames) + 1))
    bus = runtime.stats()["bus"]
    assert (bus["received"], bus["malformed"]) == (2 * len(bad_frames) + 1, len(bad_frames))
    dropped = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(dropped) == len(bad_frames)  # once each, with its reason
    assert "hunter2" not in caplog.text


def test_a_gap_in_a_sources_seq_is_counted_and_the_event_still_runs(runtime, caplog):
    rule = deposit_rule(runtime)
    runtime.publish("trade.push", {**DEPOSIT, "order": 1}, source="crm")
    with runtime.other_publisher("crm", first_seq=5) as skipping:
        skipping.publish("trade.push", {**DEPOSIT, "order": 5}, event="EV_RECORD_ADD")
        runtime.sent += 1
        runtime.settle()
    assert orders(runtime, rule) == [1, 5]
    assert runtime.stats()["bus"]["gaps"] == 1
    assert "seq 2..4 missing" in caplog.text


def test_reference_pushes_are_seen_by_the_next_event_of_the_same_publisher(runtime):
    rule = runtime.rule("deposit.created", [notify("{{customer.email}} paid {{amount_usd}} USD")], [
        {"field": "customer.id", "op": "==", "value": 801},
        {"field": "amount_usd", "op": "==", "value": 120},
        {"field": "account.group", "op": "==", "value": "fresh"}])
    # One publisher, no waiting in between: each push must be in place for the next event.
    runtime.publish("group.push", {"group": "fresh", "brand": "alpha", "currency": "CHF"}, event="EV_RECORD_ADD")
    runtime.publish("rate.push", {"currency": "chf", "usd": 1.2}, event=None)
    runtime.publish("manager.push", {"id": 12, "name": "Zed", "enabled": True, "brand": "alpha"},
                    event="EV_RECORD_ADD")
    runtime.publish("customer.push", {"id": 801, "brand": "alpha", "email": "new@example.com",
                                      "assigned_manager_id": 12}, event="EV_RECORD_ADD")
    runtime.publish("account.push", {"login": 5001, "group": "fresh", "customer_id": 801}, event="EV_RECORD_ADD")
    runtime.deposit(5001, 100)
    run = runtime.wait_run(rule)
    assert (run["status"], run["actions"][0]["recipients"]) == ("success", [12])
    runtime.settle()
    assert runtime.notifications()[-1]["message"] == "new@example.com paid 120.0 USD"
    # ... and storage has them too (what a restarted engine loads).
    assert runtime.call("MngGetGroups", {"group": "fresh"})["records"][0]["currency"] == "CHF"
    assert runtime.call("MngGetRates", {"currency": "CHF"})["records"][0]["usd"] == 1.2
    assert runtime.call("MngGetManagers", {"id": 12})["records"][0]["name"] == "Zed"
    assert runtime.call("MngGetCustomers", {"id": 801})["records"][0]["assigned_manager_id"] == 12
    assert runtime.call("MngGetAccounts", {"login": 5001})["records"][0]["customer_id"] == 801


def test_a_reference_update_merges_into_the_record_it_updates(runtime):
    rule = runtime.rule("deposit.created", [notify("{{account.name}} {{account.leverage}}", manager_id=7)])
    runtime.publish("account.push", {"login": 1001, "leverage": 300}, event="EV_RECORD_UPDATE")
    runtime.deposit(1001, 10)
    runtime.wait_run(rule)
    wait_until(runtime.notifications)
    assert runtime.notifications()[0]["message"] == "Al 300"
