"""Manual execution over REP and HTTP: RBAC by role and exec_roles, the run and its trace."""

from __future__ import annotations

import pytest
import requests

from brokerflow.errors import AccessDenied, ValidationFailed

CALL_BACK = {"trigger": "manual", "run_as": 7, "conditions": [{"field": "input.amount", "op": ">=", "value": 100}]}


def manual_rule(auto, **changes):
    rule = {**CALL_BACK,
            "actions": [{"type": "notify.manager",
                         "params": {"manager_id": 7, "message": "call {{input.customer}} back"}},
                        {"type": "webhook.send", "params": {"url": auto.hooks_url + "/ok"}}]}
    rule.update(changes)
    return auto.add_rule(**rule)


def test_an_admin_runs_a_manual_rule_and_gets_the_run_and_a_step_by_step_trace(auto):
    rule = manual_rule(auto)
    body = auto.admin.call("MngExecWorkflowRule", {"id": rule["id"], "input": {"amount": 250, "customer": "Ana"}})
    run, trace = body["run"], body["trace"]
    assert (run["rule_id"], run["trigger"], run["status"], run["run_as"]) == (rule["id"], "manual", "success", 7)
    assert run["event_id"] == "exec:admin" and run["started_at"].endswith("Z")
    assert trace[0] == {"step": "condition", "field": "input.amount", "op": ">=", "value": 100, "actual": 250,
                        "result": True}
    assert [(s["type"], s["status"], s["error"]) for s in trace[1:]] == [
        ("notify.manager", "success", None), ("webhook.send", "success", None)]
    assert trace[1]["result"] == {"recipients": [7]} and trace[2]["result"]["http_status"] == 200
    assert [attempt["http_status"] for attempt in trace[2]["result"]["attempts"]] == [200]  # one, answered 200
    assert all(isinstance(step["ms"], float) for step in trace[1:])
    assert auto.runs(rule_id=rule["id"])[0]["id"] == run["id"]
    assert auto.notifications()[0]["message"] == "call Ana back"


def test_conditions_that_do_not_hold_log_a_skipped_run_and_say_why(auto):
    rule = manual_rule(auto)
    body = auto.admin.call("MngExecWorkflowRule", {"id": rule["id"], "input": {"amount": 5}})
    assert (body["run"]["status"], body["run"]["error"]) == ("skipped", "conditions do not hold")
    assert body["trace"][0]["actual"] == 5 and body["trace"][0]["result"] is False
    assert [s["status"] for s in body["trace"][1:]] == ["skipped", "skipped"]


def test_a_failing_action_shows_its_error_in_the_trace(auto):
    failing = {"type": "webhook.send", "params": {"url": auto.hooks_url + "/fail"}}
    rule = manual_rule(auto, conditions=[], actions=[failing, {"type": "notify.manager", "params": {"message": "x"}}])
    body = auto.admin.call("MngExecWorkflowRule", {"id": rule["id"], "input": {}})
    assert body["run"]["status"] == "failed"
    assert [(s["status"], bool(s["error"])) for s in body["trace"]] == [("failed", True), ("skipped", False)]


def test_a_manager_is_denied_without_exec_roles_even_when_the_rule_runs_as_someone(auto):
    rule = manual_rule(auto)
    with pytest.raises(AccessDenied):
        auto.manager.call("MngExecWorkflowRule", {"id": rule["id"], "input": {"amount": 500}})
    reply = requests.post(f"{auto.http}/automation/{rule['id']}/exec", json={"amount": 500},
                          headers={"Authorization": f"Bearer {auto.manager_token}"}, timeout=10)
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "ACCESS_DENIED"
    assert auto.runs(rule_id=rule["id"]) == []


def test_a_manager_in_exec_roles_may_run_it_over_rep_and_http(auto):
    rule = manual_rule(auto, exec_roles=["SESSION_MANAGER"])
    body = auto.manager.call("MngExecWorkflowRule", {"id": rule["id"], "input": {"amount": 500, "customer": "Bo"}})
    assert body["run"]["status"] == "success"
    reply = requests.post(f"{auto.http}/automation/{rule['id']}/exec", json={"amount": 100, "customer": "Cy"},
                          headers={"Authorization": f"Bearer {auto.manager_token}"}, timeout=10)
    assert reply.status_code == 200, reply.text
    envelope = reply.json()
    assert envelope["success"] is True and envelope["body"]["run"]["status"] == "success"
    assert envelope["body"]["run"]["event_id"] == "exec:manager"
    assert len(auto.runs(rule_id=rule["id"])) == 2


def test_only_active_manual_rules_can_be_executed(auto):
    event_rule = auto.add_rule(trigger="customer.updated",
                               actions=[{"type": "notify.manager", "params": {"message": "m"}}])
    with pytest.raises(ValidationFailed, match="only manual rules"):
        auto.admin.call("MngExecWorkflowRule", {"id": event_rule["id"], "input": {}})
    disabled = manual_rule(auto, status="disabled")
    with pytest.raises(ValidationFailed, match="only active rules"):
        auto.admin.call("MngExecWorkflowRule", {"id": disabled["id"], "input": {}})
    rule = manual_rule(auto)
    with pytest.raises(ValidationFailed, match="input"):
        auto.admin.call("MngExecWorkflowRule", {"id": rule["id"], "input": [1, 2]})
