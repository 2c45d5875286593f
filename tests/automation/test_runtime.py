"""The mode actors survive garbage, show in MngGetStats, and MngTestWorkflowRule covers the modes."""

from __future__ import annotations

from tests.conftest import wait_until


def test_every_mode_actor_goes_on_after_a_garbage_message(auto):
    automation = auto.automation
    refs = [automation.modes, automation.scheduler, *automation.before_workers,
            auto.engine.pipeline.refs["inline"], auto.engine.pipeline.refs["email"]]
    for ref in refs:
        ref.tell("garbage")
        ref.tell(object())
    hook = auto.add_rule(trigger="customer.beforeCreate",
                         actions=[{"type": "record.set", "params": {"field": "risk_level", "value": "high"}}])
    for customer_id in range(800, 808):  # reaches every before worker
        body = auto.admin.call("Before", {"resource": "customer", "operation": "create",
                                          "record": {"id": customer_id, "brand": "alpha"}})
        assert body["record"]["risk_level"] == "high"
    mail = auto.add_rule(trigger="manual", actions=[{"type": "email.send", "params": {"to": "a@b.c", "subject": "s"}}])
    assert auto.admin.call("MngExecWorkflowRule", {"id": mail["id"], "input": {}})["run"]["status"] == "success"
    assert automation.tick(0) == []
    stats = {cell["name"]: cell for cell in auto.admin.call("MngGetStats")["actors"]}
    assert all(stats[name]["failed"] >= 2 for name in ("modes", "scheduler", "inline", "email", "before:0"))
    assert len(auto.runs(rule_id=hook["id"])) == 8


def test_mode_actors_appear_in_the_stats(auto):
    kinds = {cell["kind"] for cell in auto.admin.call("MngGetStats")["actors"]}
    assert {"modes", "scheduler", "before", "inline", "email"} <= kinds


def dry(auto, rule, topic, payload):
    return auto.admin.call("MngTestWorkflowRule", {"rule": rule, "event": {"topic": topic, "payload": payload}})


def test_dry_runs_cover_the_automation_triggers_without_side_effects(auto):
    hook = {"name": "h", "brand": "alpha", "trigger": "customer.beforeCreate",
            "conditions": [{"field": "customer.country", "op": "==", "value": "CY"}],
            "actions": [{"type": "operation.reject", "params": {"message": "no {{customer.country}}"}}]}
    body = dry(auto, hook, "customer.beforeCreate", {"brand": "alpha", "country": "CY"})
    assert body["matched"] is True and body["actions"][0]["params"]["message"] == "no CY"
    assert dry(auto, hook, "customer.beforeCreate", {"brand": "beta", "country": "CY"})["reason"].startswith("brand")

    sink = {"name": "s", "brand": "alpha", "trigger": "sink.request", "run_as": 7,
            "conditions": [{"field": "request.body.status", "op": "==", "value": "paid"}],
            "actions": [{"type": "sink.respond", "params": {"body": "got {{request.body.amount}}"}}]}
    body = dry(auto, sink, "sink.request", {"route": "psp", "body": {"status": "paid", "amount": 5}})
    assert body["matched"] is True and body["conditions"][0]["actual"] == "paid"

    mail = {"name": "m", "brand": "alpha", "trigger": "email.received",
            "conditions": [{"field": "email.subject", "op": "contains", "value": "KYC"}],
            "actions": [{"type": "notify.manager", "params": {"message": "{{email.subject}}"}}]}
    assert dry(auto, mail, "email.received", {"subject": "KYC docs"})["matched"] is True

    manual = {"name": "x", "brand": "alpha", "trigger": "manual",
              "conditions": [{"field": "input.n", "op": ">", "value": 1}],
              "actions": [{"type": "notify.manager", "params": {"message": "n={{input.n}}"}}]}
    assert dry(auto, manual, "manual", {"n": 2})["actions"][0]["params"]["message"] == "n=2"
    assert dry(auto, manual, "sink.request", {})["reason"].startswith("trigger mismatch")

    sweep = {"name": "w", "brand": "alpha", "trigger": "interval", "run_as": 7, "schedule": {"cron": "0 9 * * *"},
             "conditions": [{"field": "customer.kyc_status", "op": "==", "value": "pending"}],
             "actions": [{"type": "notify.manager", "params": {"message": "{{customer.email}}"}}]}
    body = dry(auto, sweep, "interval", {})
    assert (body["matched"], body["customers"], body["customers_matching"]) == (False, [501, 503], 2)
    body = dry(auto, sweep, "interval", {"customer_id": 503})
    assert body["matched"] is True and body["actions"][0]["params"]["message"] == "cy@example.com"
    auto.engine.drain(1.0)
    assert auto.runs() == [] and auto.notifications() == []


def test_rule_changes_reach_the_modes_at_once(auto):
    rule = auto.add_rule(trigger="customer.beforeCreate",
                         actions=[{"type": "record.set", "params": {"field": "status", "value": "new"}}])
    record = {"id": 900, "brand": "alpha"}
    call = {"resource": "customer", "operation": "create", "record": record}
    assert auto.admin.call("Before", call)["changed"] is True
    auto.admin.call("MngArchiveWorkflowRule", {"id": rule["id"]})
    assert wait_until(lambda: auto.admin.call("Before", call)["changed"] is False)
