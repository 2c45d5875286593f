"""Rule changes through the API reach the running engine at once; inactive rules never fire."""

from __future__ import annotations

from tests.runtime.conftest import notify

AMOUNT_OVER_50 = [{"field": "amount_usd", "op": ">", "value": 50}]


def runs_of(runtime, rule):
    return runtime.runs(rule_id=rule["id"])


def test_disabled_and_archived_rules_never_fire(runtime):
    disabled = runtime.rule("deposit.created", [notify("d", manager_id=7)], status="disabled")
    archived = runtime.rule("deposit.created", [notify("a", manager_id=7)])
    runtime.call("MngArchiveWorkflowRule", {"id": archived["id"]})
    active = runtime.rule("deposit.created", [notify("x", manager_id=7)])
    runtime.deposit(1001, 10)
    runtime.settle()
    assert [run["rule_id"] for run in runtime.runs()] == [active["id"]]
    assert runs_of(runtime, disabled) == runs_of(runtime, archived) == []


def test_add_update_archive_and_delete_take_effect_without_a_restart(runtime):
    runtime.deposit(1001, 100)  # no rule yet
    runtime.settle()
    assert runtime.runs() == []

    rule = runtime.rule("deposit.created", [notify("big", manager_id=7)], AMOUNT_OVER_50)
    runtime.deposit(1001, 100)
    assert runtime.wait_run(rule)["rule_version"] == 1

    changed = dict(rule, conditions=[{"field": "amount_usd", "op": ">", "value": 500}])
    updated = runtime.call("MngUpdateWorkflowRule", {"id": rule["id"], "version": 1, "rule": changed})["rule"]
    assert updated["version"] == 2
    runtime.deposit(1001, 100)  # no longer big enough
    runtime.deposit(1001, 1000)
    runtime.wait_runs(2, rule_id=rule["id"])
    runtime.settle()
    assert [run["rule_version"] for run in runs_of(runtime, rule)] == [2, 1]

    runtime.call("MngUpdateWorkflowRule", {"id": rule["id"], "version": 2, "rule": dict(changed, status="disabled")})
    runtime.deposit(1001, 1000)
    runtime.settle()
    assert len(runs_of(runtime, rule)) == 2

    runtime.call("MngUpdateWorkflowRule", {"id": rule["id"], "version": 3, "rule": dict(changed, status="active")})
    runtime.deposit(1001, 1000)
    runtime.wait_runs(3, rule_id=rule["id"])

    runtime.call("MngArchiveWorkflowRule", {"id": rule["id"]})
    runtime.deposit(1001, 1000)
    runtime.settle()
    assert len(runs_of(runtime, rule)) == 3

    other = runtime.rule("deposit.created", [notify("other", manager_id=7)])
    runtime.call("MngDeleteWorkflowRule", {"id": other["id"]})
    runtime.deposit(1001, 1000)
    runtime.settle()
    assert runs_of(runtime, other) == []


def test_a_rule_for_a_new_brand_starts_working_at_once(runtime):
    runtime.upsert("Group", {"group": "gamma-usd", "brand": "gamma", "currency": "USD"})
    runtime.upsert("Account", {"login": 7001, "group": "gamma-usd"})
    runtime.upsert("Manager", {"id": 70, "enabled": True, "brand": "gamma"})
    rule = runtime.rule("deposit.created", [notify("gamma")], brand="gamma")
    runtime.deposit(7001, 10)
    run = runtime.wait_run(rule)
    assert (run["brand"], run["actions"][0]["recipients"]) == ("gamma", [70])


def test_rules_run_in_priority_order(runtime):
    late = runtime.rule("deposit.created", [notify("late", manager_id=7)], priority=200, name="late")
    default = runtime.rule("deposit.created", [notify("default", manager_id=7)], name="default")
    early = runtime.rule("deposit.created", [notify("early", manager_id=7)], priority=10, name="early")
    runtime.deposit(1001, 10)
    runs = runtime.wait_runs(3)
    order = [run["rule_id"] for run in sorted(runs, key=lambda run: run["id"])]
    assert order == [early["id"], default["id"], late["id"]]


def test_a_reference_upsert_is_in_the_replica_when_the_call_returns_even_behind_a_backlog(runtime):
    """Read your writes: a dry run or an event right after an upsert sees it."""
    for order in range(3000):  # a backlog of events in front of the router
        runtime.publish("trade.push", {"order": order, "login": 1001, "cmd": "OP_BUY", "volume": 1})
    for customer_id in range(9000, 9010):
        runtime.upsert("Customer", {"id": customer_id, "brand": "alpha", "email": f"c{customer_id}@example.com"})
        assert customer_id in runtime.engine.refs.customers
    runtime.settle()
