"""Every action through the running engine: what it changes, what it publishes, how it fails."""

from __future__ import annotations

import logging

from brokerflow.workflow.policies.webhook_requests import idempotency_key
from tests.conftest import free_port, wait_until
from tests.runtime.conftest import body_json, notify, webhook


def deposit_rule(runtime, actions, conditions=None, **fields):
    return runtime.rule("deposit.created", actions, conditions, **fields)


def action_view(run):
    return [(a["type"], a["status"]) for a in run["actions"]]


# -- notify.manager ----------------------------------------------------------------------------
def test_notify_publishes_the_rendered_message_to_the_manager(runtime):
    rule = deposit_rule(runtime, [notify("Login {{trade.login}} paid {{amount_usd}} {x} {{nope}}", manager_id=8)])
    runtime.deposit(1001, 250)
    run = runtime.wait_run(rule)
    assert run["status"] == "success"
    assert run["actions"][0]["recipients"] == [8]
    wait_until(runtime.notifications)
    assert runtime.notifications() == [{"manager_id": 8, "message": "Login 1001 paid 250 {x} {{nope}}",
                                        "rule_id": rule["id"], "run_id": run["id"], "brand": "alpha"}]


# -- customer.set_risk_level / customer.set_status ---------------------------------------------
def test_set_risk_level_stores_publishes_and_is_a_no_op_the_second_time(runtime):
    rule = deposit_rule(runtime, [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}])
    runtime.deposit(1001, 10)
    first = runtime.wait_run(rule)
    assert (first["status"], first["actions"][0]["changed"]) == ("success", True)
    wait_until(lambda: runtime.outbound.of("customer.changed"))
    assert runtime.outbound.of("customer.changed") == [
        {"customer_id": 501, "changes": {"risk_level": "high"}, "rule_id": rule["id"], "run_id": first["id"]}]
    assert runtime.call("MngGetCustomers", {"id": 501})["records"][0]["risk_level"] == "high"

    runtime.deposit(1001, 10)
    second = runtime.wait_runs(2, rule_id=rule["id"])[0]
    assert (second["status"], second["actions"][0]["changed"]) == ("success", False)
    runtime.settle()
    assert len(runtime.outbound.of("customer.changed")) == 1


def test_set_status_changes_only_the_status(runtime):
    rule = deposit_rule(runtime, [{"type": "customer.set_status", "params": {"status": "blocked"}}])
    runtime.deposit(1002, 10)
    assert runtime.wait_run(rule)["status"] == "success"
    customer = runtime.call("MngGetCustomers", {"id": 502})["records"][0]
    assert (customer["status"], customer["risk_level"], customer["email"]) == ("blocked", "low", "bo@example.com")
    wait_until(lambda: runtime.outbound.of("customer.changed"))
    assert runtime.outbound.of("customer.changed")[0]["changes"] == {"status": "blocked"}


def test_customer_actions_without_a_linked_customer_fail_the_run(runtime):
    rule = deposit_rule(runtime, [{"type": "customer.set_status", "params": {"status": "blocked"}},
                                  notify("never", manager_id=7)])
    runtime.deposit(1003, 10)  # a direct trading account: no CRM customer
    run = runtime.wait_run(rule)
    assert run["status"] == "failed"
    assert action_view(run) == [("customer.set_status", "failed"), ("notify.manager", "skipped")]
    assert "linked customer" in run["error"] == run["actions"][0]["error"]
    runtime.settle()
    assert runtime.notifications() == []


def test_customer_actions_on_an_unknown_customer_fail_instead_of_inventing_one(runtime):
    runtime.upsert("Account", {"login": 1009, "group": "real-usd", "customer_id": 999})
    rule = deposit_rule(runtime, [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}])
    runtime.deposit(1009, 10)
    run = runtime.wait_run(rule)
    assert run["status"] == "failed" and "customer 999 is not known" in run["error"]
    assert runtime.call("MngGetCustomers", {"id": 999})["records"] == []


# -- kyc.require_step / kyc.set_required_level ------------------------------------------------
def test_require_step_attaches_the_template_step(runtime):
    rule = deposit_rule(runtime, [{"type": "kyc.require_step",
                                   "params": {"step_code": "SELFIE", "reason": "big deposit"}}])
    runtime.deposit(1001, 10)
    assert runtime.wait_run(rule)["status"] == "success"
    profile = runtime.call("MngGetKycProfile", {"customer_id": 501})["profile"]
    assert [(s["step_code"], s["level"], s["status"], s["reason"]) for s in profile["steps"]] == [
        ("SELFIE", 2, "required", "big deposit")]
    wait_until(lambda: runtime.outbound.of("kyc.changed"))
    change = runtime.outbound.of("kyc.changed")[0]
    assert (change["customer_id"], change["rule_id"]) == (501, rule["id"])
    assert [s["step_code"] for s in change["steps"]] == ["SELFIE"]


def test_require_step_with_a_missing_template_fails_with_a_clear_error(runtime):
    rule = deposit_rule(runtime, [{"type": "kyc.require_step", "params": {"step_code": "DNA"}},
                                  notify("never", manager_id=7)])
    runtime.deposit(1001, 10)
    run = runtime.wait_run(rule)
    assert run["status"] == "failed"
    assert action_view(run) == [("kyc.require_step", "failed"), ("notify.manager", "skipped")]
    assert "DNA" in run["error"] and "template" in run["error"]


def test_require_step_with_an_inactive_template_fails(runtime):
    rule = deposit_rule(runtime, [{"type": "kyc.require_step", "params": {"step_code": "OLD"}}])
    runtime.deposit(1001, 10)
    assert runtime.wait_run(rule)["status"] == "failed"


def test_kyc_actions_without_a_linked_customer_fail_the_run(runtime):
    rule = deposit_rule(runtime, [{"type": "kyc.set_required_level", "params": {"level": 1}}])
    runtime.deposit(1003, 10)
    run = runtime.wait_run(rule)
    assert run["status"] == "failed" and "linked customer" in run["error"]


def test_a_kyc_step_push_updates_the_profile(runtime):
    deposit_rule(runtime, [{"type": "kyc.set_required_level", "params": {"level": 1}}])
    runtime.deposit(1001, 10)
    runtime.wait_runs(1)
    for code in ("ID", "POA"):
        runtime.publish("kyc.step.push", {"customer_id": 501, "step_code": code, "level": 1, "status": "approved"},
                        event=None)
    runtime.settle()
    profile = runtime.call("MngGetKycProfile", {"customer_id": 501})["profile"]
    assert {s["step_code"]: s["status"] for s in profile["steps"]} == {"ID": "approved", "POA": "approved"}
    assert (profile["required_level"], profile["current_level"]) == (1, 1)


# -- webhook.send ------------------------------------------------------------------------------
def test_webhook_sends_the_request_with_an_idempotency_key(runtime, receiver):
    headers = {"X-Api-Key": "k-123", "Content-Type": "application/json"}
    rule = deposit_rule(runtime, [notify("first", manager_id=7), webhook(
        receiver.url("/hooks/deposit"), method="PUT", headers=headers,
        body='{"login": {{trade.login}}, "usd": {{amount_usd}}}', timeout_ms=2000)])
    runtime.deposit(1001, 75)
    run = runtime.wait_run(rule)
    assert run["status"] == "success", run
    assert action_view(run) == [("notify.manager", "success"), ("webhook.send", "success")]
    assert run["actions"][1]["http_status"] == 200
    [request] = receiver.on("/hooks/deposit")
    assert request["method"] == "PUT"
    assert body_json(request) == {"login": 1001, "usd": 75}
    assert request["headers"]["X-Api-Key"] == "k-123"
    # A bus event's run: the key comes from the event and the rule, so a run repeated after a
    # crash (with another run id) sends the same one.
    key = idempotency_key(run["id"], 1, (run["source"], run["seq"], run["rule_id"]))
    assert request["headers"]["Idempotency-Key"] == key and key.startswith("brokerflow-e")


def test_webhook_method_defaults_to_post(runtime, receiver):
    rule = deposit_rule(runtime, [webhook(receiver.url("/plain"))])
    runtime.deposit(1001, 1)
    assert runtime.wait_run(rule)["status"] == "success"
    assert receiver.on("/plain")[0]["method"] == "POST"


def test_webhook_answered_500_fails_the_run_and_skips_the_rest(runtime, receiver):
    rule = deposit_rule(runtime, [webhook(receiver.url("/status/500"), retries=0), notify("never", manager_id=7)])
    runtime.deposit(1001, 1)
    run = runtime.wait_run(rule)
    assert run["status"] == "failed"
    assert action_view(run) == [("webhook.send", "failed"), ("notify.manager", "skipped")]
    assert run["error"] == "HTTP 500" and run["actions"][0]["http_status"] == 500
    runtime.settle()
    assert runtime.notifications() == []


def test_a_redirect_is_not_followed_and_fails(runtime, receiver):
    rule = deposit_rule(runtime, [webhook(receiver.url("/status/302"))])
    runtime.deposit(1001, 1)
    run = runtime.wait_run(rule)
    assert run["status"] == "failed" and "redirect not followed" in run["error"]
    assert len(receiver.requests) == 1


def test_a_webhook_that_does_not_answer_in_time_fails_with_a_timeout(runtime, receiver):
    rule = deposit_rule(runtime, [webhook(receiver.url("/slow"), timeout_ms=10, retries=0)])  # clamped to 1000
    runtime.deposit(1001, 1)
    run = runtime.wait_run(rule, timeout_s=5)
    receiver.release.set()
    assert run["status"] == "failed" and run["error"].startswith("timeout")
    assert 900 <= run["actions"][0]["ms"] < 2500


def test_a_refused_connection_fails_and_its_url_secrets_are_masked(runtime, caplog):
    port = free_port()  # nothing listens there
    url = f"http://hookuser:s3cr3t-pw@127.0.0.1:{port}/hook?token=tok-98765&x=1"
    rule = deposit_rule(runtime, [webhook(url, headers={"Authorization": "Bearer abc-very-secret"}, retries=0)])
    with caplog.at_level(logging.DEBUG):
        runtime.deposit(1001, 1)
        run = runtime.wait_run(rule)
    assert run["status"] == "failed" and run["error"].startswith("connection failed")
    for secret in ("s3cr3t-pw", "tok-98765", "abc-very-secret"):
        assert secret not in str(run)
        assert secret not in caplog.text


def test_a_private_target_is_refused_unless_allowed(make_runtime, receiver):
    runtime = make_runtime(webhook_allow=())
    rule = deposit_rule(runtime, [webhook(receiver.url("/internal"))])
    runtime.deposit(1001, 1)
    run = runtime.wait_run(rule)
    assert run["status"] == "failed" and run["error"].startswith("target refused")
    assert receiver.requests == []


def test_a_failed_action_ends_the_run_and_later_actions_are_skipped(runtime, receiver):
    rule = deposit_rule(runtime, [
        notify("before", manager_id=7),
        {"type": "kyc.require_step", "params": {"step_code": "NOPE"}},
        webhook(receiver.url("/after")),
        {"type": "customer.set_status", "params": {"status": "blocked"}}])
    runtime.deposit(1001, 1)
    run = runtime.wait_run(rule)
    assert action_view(run) == [("notify.manager", "success"), ("kyc.require_step", "failed"),
                                ("webhook.send", "skipped"), ("customer.set_status", "skipped")]
    runtime.settle()
    assert receiver.requests == []
    assert runtime.call("MngGetCustomers", {"id": 501})["records"][0]["status"] == "active"
    assert [n["message"] for n in runtime.notifications()] == ["before"]
