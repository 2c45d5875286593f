"""PROTOCOL section 11 on a real engine: cooldowns, windowed aggregates and backtests, across restarts."""

from __future__ import annotations

from typing import Any

from tests.conftest import wait_until
from tests.runtime.conftest import notify


def deposit_event(login: int, amount: float, **extra: Any) -> dict[str, Any]:
    return {"topic": "trade.push", "payload": {"event": "EV_RECORD_ADD", "record": {
        "order": 1, "login": login, "cmd": "OP_BALANCE_IN", "profit": amount}, **extra}}


def test_a_cooldown_runs_once_per_customer_counts_the_rest_and_survives_a_restart(make_runtime) -> None:
    runtime = make_runtime()
    rule = runtime.rule("deposit.created", [notify("deposit {{amount_usd}}")],
                        [{"field": "amount_usd", "op": ">=", "value": 100}],
                        cooldown={"key": "customer.id", "seconds": 3600})
    assert rule["cooldown"] == {"key": "customer.id", "seconds": 3600}
    for amount in (150, 200, 300):
        runtime.deposit(1001, amount)
    runtime.deposit(1002, 500)  # another customer: its own cooldown
    runtime.settle()
    runs = runtime.wait_runs(2, rule_id=rule["id"])
    assert len(runs) == 2
    assert runtime.stats()["runs"]["suppressed"] == 2
    test = runtime.call("MngTestWorkflowRule", {"id": rule["id"], "event": deposit_event(1001, 999)})
    assert test["matched"] is True and test["suppressed"] is True and test["actions"] == []
    assert "cooldown" in test["reason"] and test["cooldown"]["value"] == 501
    other = runtime.call("MngTestWorkflowRule", {"id": rule["id"], "event": deposit_event(1003, 999)})
    assert other["suppressed"] is False  # login 1003 has no customer: a key never run for yet

    runtime.restart()
    runtime.deposit(1001, 700)
    runtime.settle()
    wait_until(lambda: runtime.stats()["runs"]["suppressed"] == 1)
    assert len(runtime.runs(rule_id=rule["id"])) == 2
