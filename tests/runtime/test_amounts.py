"""``amount_usd`` (docs/runtime.md): given, or converted with the group currency's rate."""

from __future__ import annotations

import pytest

from tests.runtime.conftest import notify

AMOUNT_RULE = [{"field": "amount_usd", "op": ">=", "value": 1}]


def amount_rule(runtime, trigger="deposit.created"):
    return runtime.rule(trigger, [notify("{{amount_usd}}", manager_id=7)], AMOUNT_RULE)


def amount_of(runtime, rule):
    runtime.wait_run(rule)
    runtime.settle()
    return float(runtime.notifications()[-1]["message"])


@pytest.mark.parametrize(("login", "record", "usd"), [
    (1001, {"profit": 250.0}, 250.0),                    # USD group: rate 1
    (1002, {"profit": 100.0}, 110.0),                    # EUR group at 1.1
    (1002, {"profit": 100.0, "amount_usd": 5.5}, 5.5),   # the record's amount_usd wins
    (1004, {"profit": 1000, "amount_usd": 7}, 7),        # ... even without a rate
])
def test_amount_usd_of_a_deposit(runtime, login, record, usd):
    rule = amount_rule(runtime)
    runtime.publish("trade.push", {"order": 1, "login": login, "cmd": "OP_BALANCE_IN", **record})
    assert amount_of(runtime, rule) == pytest.approx(usd)


def test_a_withdrawal_counts_its_absolute_amount(runtime):
    rule = amount_rule(runtime, "withdrawal.created")
    runtime.publish("trade.push", {"order": 1, "login": 1002, "cmd": "OP_BALANCE_OUT", "profit": -50.0})
    assert amount_of(runtime, rule) == pytest.approx(55.0)


def test_a_rate_pushed_on_the_bus_is_used_by_the_next_event(runtime):
    rule = amount_rule(runtime)
    runtime.publish("rate.push", {"currency": "EUR", "usd": 2.0}, event=None)
    runtime.deposit(1002, 100)
    assert amount_of(runtime, rule) == pytest.approx(200.0)


def test_an_unknown_rate_logs_a_skipped_run_that_says_why(runtime):
    rule = runtime.rule("deposit.created", [notify("never", manager_id=7)], AMOUNT_RULE)
    runtime.deposit(1004, 100)  # JPY group, no JPY rate
    run = runtime.wait_run(rule)
    assert run["status"] == "skipped"
    assert run["error"] == "amount_usd unknown: no USD rate for JPY"
    assert [(a["type"], a["status"]) for a in run["actions"]] == [("notify.manager", "skipped")]
    runtime.settle()
    assert runtime.notifications() == []
    assert runtime.stats()["runs"]["skipped"] == 1
    assert runtime.runs(status="skipped") == [run]


def test_a_rule_that_does_not_test_the_amount_runs_without_a_rate(runtime):
    rule = runtime.rule("deposit.created", [notify("ok", manager_id=7)],
                        [{"field": "trade.login", "op": "==", "value": 1004}])
    runtime.deposit(1004, 100)
    assert runtime.wait_run(rule)["status"] == "success"
