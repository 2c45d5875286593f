"""PROTOCOL section 11 on a real engine: cooldowns, windowed aggregates and backtests, across restarts."""

from __future__ import annotations

import random
from typing import Any

import pytest

from brokerflow.api.client import ApiClient
from brokerflow.clock import now_ms
from brokerflow.errors import AccessDenied, ValidationFailed
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


T = 1_795_000_000_000
HOUR_SUM = {"agg": "sum", "field": "amount_usd", "window_s": 3600, "by": "customer.id", "op": ">=", "value": 1000}


def deposit_at(runtime, login: int, amount: float, ts_ms: int, event_id: str) -> None:
    runtime.sent += 1
    runtime.publisher().publish("trade.push", {"order": 1, "login": login, "cmd": "OP_BALANCE_IN", "profit": amount},
                                event="EV_RECORD_ADD", id=event_id, ts_ms=ts_ms)


def test_an_aggregate_on_event_time_survives_a_restart_and_stops_at_the_window_edge(make_runtime) -> None:
    runtime = make_runtime()
    rule = runtime.rule("deposit.created", [notify("{{customer.id}} deposited 1,000 USD within an hour")],
                        [HOUR_SUM])
    deposit_at(runtime, 1001, 400, T, "a")
    deposit_at(runtime, 1001, 500, T + 1000, "b")
    deposit_at(runtime, 1002, 800, T + 1000, "other-customer")  # 880 USD (EUR at 1.1): its own window
    runtime.settle()
    assert runtime.runs(rule_id=rule["id"]) == []

    runtime.restart()
    deposit_at(runtime, 1001, 200, T + 2000, "c")  # 1,100 within the hour, with what was stored
    runtime.settle()
    assert [run["event_id"] for run in runtime.wait_runs(1, rule_id=rule["id"])] == ["c"]
    test = runtime.call("MngTestWorkflowRule", {"id": rule["id"], "event": deposit_event(1001, 10, ts=T + 2500)})
    assert test["matched"] is True and test["conditions"][0]["actual"] == 1110

    deposit_at(runtime, 1001, 250, T + 3_600_000, "edge")  # a's 400 is exactly an hour old: out (950)
    deposit_at(runtime, 1001, 100, T + 3_600_500, "in")  # 500 + 200 + 250 + 100 = 1,050
    runtime.settle()
    runs = runtime.wait_runs(2, rule_id=rule["id"])
    assert sorted(run["event_id"] for run in runs) == ["c", "in"]


def test_a_backtest_counts_what_the_test_computes_and_changes_nothing(make_runtime) -> None:
    runtime = make_runtime()
    start = now_ms() - 3_600_000
    rng = random.Random(18)
    sent: list[tuple[str, int, int, float]] = []  # (id, ts, login, amount)
    for i in range(120):
        login = rng.choice([1001, 1002, 1003, 2001])  # 2001 is of brand beta
        amount = rng.choice([50, 300, 480, 500, 900, 2500])
        ts = start + i * 20_000
        deposit_at(runtime, login, amount, ts, f"bt-{i}")
        sent.append((f"bt-{i}", ts, login, amount))
    runtime.settle()
    usd = {1001: 1.0, 1002: 1.1, 1003: 1.0}  # real-eur converts at 1.1; 2001 is another brand's
    window = (start + 400_000, start + 2_000_000)
    expected = [event_id for event_id, ts, login, amount in sent
                if login in usd and window[0] <= ts <= window[1] and amount * usd[login] >= 500]
    in_range = [e for e in sent if e[2] in usd and window[0] <= e[1] <= window[1]]
    draft = {"name": "draft", "brand": "alpha", "trigger": "deposit.created",
             "conditions": [{"field": "amount_usd", "op": ">=", "value": 500}], "actions": [notify("big")]}
    runs_before = len(runtime.runs())

    body = runtime.call("MngBacktestWorkflowRule", {"rule": draft, "from": window[0], "to": window[1]})
    assert (body["events"], body["matched"]) == (len(in_range), len(expected))
    assert [s["event_id"] for s in body["sample"]] == expected[:100]
    assert body["sample"][0]["actions"][0]["type"] == "notify.manager"
    assert "reference data" in body["note"] and body["truncated"] is False

    limited = runtime.call("MngBacktestWorkflowRule", {"rule": draft, "limit": 10})
    assert limited["truncated"] is True and limited["scanned_rows"] == 10
    huge = runtime.call("MngBacktestWorkflowRule", {"rule": draft, "from": 0})
    assert huge["from"] > 0 and "retention" in huge["note"]
    with pytest.raises(ValidationFailed):
        runtime.call("MngBacktestWorkflowRule", {"rule": draft, "limit": 10**9})
    with pytest.raises(ValidationFailed):
        runtime.call("MngBacktestWorkflowRule", {"rule": {**draft, "conditions": [
            {"agg": "sum", "field": "amount_usd", "window_s": 10 * 365 * 86400, "by": "customer.id",
             "op": ">", "value": 1}]}})
    beta_token, _ = runtime.engine.store.tokens.create("SESSION_MANAGER", brand="beta", name="beta")
    with ApiClient(runtime.engine.api_endpoint, beta_token, context=runtime.context) as beta, \
            pytest.raises(AccessDenied):
        beta.call("MngBacktestWorkflowRule", {"rule": draft})

    runtime.settle()
    assert len(runtime.runs()) == runs_before == 0  # nothing ran, nothing was sent
    assert runtime.notifications() == []


def test_an_any_group_fires_on_either_branch_and_validation_names_a_nested_item(runtime) -> None:
    rule = runtime.rule("deposit.created", [notify("either")], [
        {"field": "amount_usd", "op": ">", "value": 0},
        {"any": [{"field": "customer.country", "op": "==", "value": "DE"},
                 {"all": [{"field": "amount_usd", "op": ">=", "value": 5000},
                          {"field": "customer.country", "op": "in", "value": ["FR", "GB"]}]}]}])
    runtime.deposit(1001, 10, id="de-small")  # DE: the first branch
    runtime.deposit(1002, 100, id="fr-small")  # FR, 110 USD: neither
    runtime.deposit(1002, 5000, id="fr-big")  # FR, 5,500 USD: the second branch
    runtime.settle()
    assert sorted(run["event_id"] for run in runtime.wait_runs(2, rule_id=rule["id"])) == ["de-small", "fr-big"]
    test = runtime.call("MngTestWorkflowRule", {"id": rule["id"], "event": deposit_event(1002, 100)})
    assert test["matched"] is False and test["conditions"][1]["op"] == "any"
    assert [item["result"] for item in test["conditions"][1]["items"]] == [False, False]
    bad = {"name": "x", "brand": "alpha", "trigger": "deposit.created", "actions": [notify()],
           "conditions": [{"field": "amount_usd", "op": ">", "value": 0},
                          {"any": [{"field": "customer.country", "op": "==", "value": 5}]}]}
    body = runtime.call("MngValidateWorkflowRule", {"rule": bad})
    assert body["valid"] is False and [e["path"] for e in body["errors"]] == ["conditions[1].any[0].value"]
    language = runtime.call("MngGetWorkflowDefinitions")["language"]
    assert {g["type"] for g in language["groups"]} == {"any", "all"} and language["group_depth_max"] == 4
