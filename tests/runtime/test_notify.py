"""``notify.manager``'s fallback chain, with one outbound message per recipient.

param ``manager_id`` -> the customer's ``assigned_manager_id`` -> its ``manager_id`` -> every
enabled manager of the brand.
"""

from __future__ import annotations

import pytest

from tests.conftest import wait_until
from tests.runtime.conftest import notify


@pytest.mark.parametrize(("login", "manager_id", "recipients"), [
    (1001, 9, [9]),          # the param wins, even over the customer's managers
    (1001, None, [8]),       # customer 501: assigned_manager_id 8 (manager_id 7 is second)
    (1001, 0, [8]),          # 0 means "not given"
    (1002, None, [7]),       # customer 502: manager_id only
    (1004, None, [7, 8]),    # customer 503: no manager -> every enabled manager of alpha (not 9, not beta's 10)
    (1003, None, [7, 8]),    # no customer at all -> broadcast too
    (2001, None, [10]),      # beta's customer 601
], ids=["param", "assigned", "zero-is-unset", "manager_id", "broadcast", "no-customer", "other-brand"])
def test_recipients_follow_the_fallback_chain(runtime, login, manager_id, recipients):
    brand = "beta" if login == 2001 else "alpha"
    rule = runtime.rule("deposit.created", [notify("deposit by {{trade.login}}", manager_id=manager_id)],
                        brand=brand)
    runtime.deposit(login, 10)
    run = runtime.wait_run(rule)
    assert run["status"] == "success"
    assert run["actions"][0]["recipients"] == recipients
    wait_until(lambda: len(runtime.notifications()) >= len(recipients))
    runtime.settle()
    notes = runtime.notifications()
    assert sorted(n["manager_id"] for n in notes) == recipients  # one message per recipient
    assert {(n["run_id"], n["rule_id"], n["brand"], n["message"]) for n in notes} == {
        (run["id"], rule["id"], brand, f"deposit by {login}")}


def test_a_broadcast_follows_managers_enabled_and_disabled_on_the_bus(runtime):
    rule = runtime.rule("deposit.created", [notify("hi")])
    runtime.publish("manager.push", {"id": 7, "enabled": False}, event="EV_RECORD_UPDATE")
    runtime.publish("manager.push", {"id": 9, "enabled": True}, event="EV_RECORD_UPDATE")
    runtime.deposit(1004, 10)
    assert runtime.wait_run(rule)["actions"][0]["recipients"] == [8, 9]


def test_nobody_to_notify_fails_the_run(runtime):
    runtime.upsert("Manager", {"id": 10, "enabled": False, "brand": "beta"})
    runtime.upsert("Customer", {"id": 601, "manager_id": 0})
    rule = runtime.rule("deposit.created", [notify("hi")], brand="beta")
    runtime.deposit(2001, 10)
    run = runtime.wait_run(rule)
    assert run["status"] == "failed" and "no manager to notify" in run["error"]
