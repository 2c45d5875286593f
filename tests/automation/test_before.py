"""Before-hooks over REP ``Before``: change, reject, cancel on error, re-validate, budget, order."""

from __future__ import annotations

import pytest

from brokerflow.errors import AccessDenied, ActionFailed, Rejected, ValidationFailed
from tests.conftest import wait_until

NEW_CUSTOMER = {"id": 700, "brand": "alpha", "email": "eve@example.com", "country": "CY", "risk_level": "low"}


def before(auto, record, resource="customer", operation="create", client=None):
    return (client or auto.admin).call("Before", {"resource": resource, "operation": operation, "record": record})


def test_a_before_rule_changes_the_value_that_will_be_written(auto):
    rule = auto.add_rule(trigger="customer.beforeCreate",
                         conditions=[{"field": "customer.country", "op": "==", "value": "CY"}],
                         actions=[{"type": "record.set", "params": {"field": "risk_level", "value": "medium"}}])
    body = before(auto, NEW_CUSTOMER)
    assert body == {"record": {**NEW_CUSTOMER, "risk_level": "medium"}, "changed": True}
    run = auto.wait_runs(1, rule_id=rule["id"])[0]
    assert (run["trigger"], run["status"]) == ("customer.beforeCreate", "success")
    assert run["actions"][0]["field"] == "risk_level" and run["actions"][0]["value"] == "medium"


def test_rules_run_in_priority_order_each_seeing_the_earlier_change(auto):
    auto.add_rule(trigger="customer.beforeCreate", priority=20,
                  conditions=[{"field": "customer.risk_level", "op": "==", "value": "medium"}],
                  actions=[{"type": "record.set", "params": {"field": "customer.status", "value": "review"}}])
    auto.add_rule(trigger="customer.beforeCreate", priority=10,
                  actions=[{"type": "record.set", "params": {"field": "risk_level", "value": "medium"}}])
    body = before(auto, NEW_CUSTOMER)
    assert body["record"]["risk_level"] == "medium" and body["record"]["status"] == "review"


def test_no_matching_rule_returns_the_record_unchanged(auto):
    auto.add_rule(trigger="customer.beforeCreate",
                  conditions=[{"field": "customer.country", "op": "==", "value": "DE"}],
                  actions=[{"type": "record.set", "params": {"field": "risk_level", "value": "high"}}])
    auto.add_rule(trigger="customer.beforeCreate", brand="beta",
                  actions=[{"type": "record.set", "params": {"field": "risk_level", "value": "high"}}])
    assert before(auto, NEW_CUSTOMER) == {"record": NEW_CUSTOMER, "changed": False}


def test_operation_reject_is_rejected_with_the_rules_message_and_stops_later_rules(auto):
    rule = auto.add_rule(trigger="customer.beforeUpdate", priority=1,
                         conditions=[{"field": "customer.country", "op": "in", "value": ["CY", "MT"]}],
                         actions=[{"type": "operation.reject",
                                   "params": {"message": "customers from {{customer.country}} are closed"}},
                                  {"type": "notify.manager", "params": {"message": "never sent"}}])
    later = auto.add_rule(trigger="customer.beforeUpdate", priority=2,
                          actions=[{"type": "notify.manager", "params": {"message": "never sent either"}}])
    with pytest.raises(Rejected) as caught:
        before(auto, {"id": 501, "country": "CY"}, operation="update")
    assert caught.value.text == "customers from CY are closed"
    run = auto.wait_runs(1, rule_id=rule["id"])[0]
    assert run["status"] == "success"
    assert [a["status"] for a in run["actions"]] == ["success", "skipped"]
    assert auto.runs(rule_id=later["id"]) == []


def test_an_action_error_cancels_the_operation_but_earlier_side_effects_stay(auto):
    rule = auto.add_rule(trigger="customer.beforeUpdate",
                         actions=[{"type": "notify.manager",
                                   "params": {"message": "customer {{customer.id}} changing"}},
                                  {"type": "webhook.send", "params": {"url": auto.hooks_url + "/fail"}},
                                  {"type": "record.set", "params": {"field": "status", "value": "never"}}])
    with pytest.raises(ActionFailed) as caught:
        before(auto, {"id": 501, "brand": "alpha", "status": "active"}, operation="update")
    assert f"before-hook rule {rule['id']} failed" in caught.value.text
    assert "was not updated" in caught.value.text
    run = auto.wait_runs(1, rule_id=rule["id"])[0]
    assert [a["status"] for a in run["actions"]] == ["success", "failed", "skipped"]
    notes = wait_until(auto.notifications)
    assert notes[0]["message"] == "customer 501 changing"


def test_an_update_hook_reads_fields_the_record_does_not_carry_from_the_stored_one(auto):
    auto.add_rule(trigger="customer.beforeUpdate",
                  conditions=[{"field": "customer.kyc_status", "op": "==", "value": "pending"}],
                  actions=[{"type": "operation.reject",
                            "params": {"message": "{{customer.email}}: finish KYC before changing the e-mail"}}])
    with pytest.raises(Rejected, match="new@example.com: finish KYC"):
        before(auto, {"id": 501, "email": "new@example.com"}, operation="update")
    assert before(auto, {"id": 502, "email": "new@example.com"}, operation="update") == \
        {"record": {"id": 502, "email": "new@example.com"}, "changed": False}


def test_the_changed_record_is_validated_again(auto):
    auto.add_rule(trigger="customer.beforeCreate",
                  actions=[{"type": "record.set", "params": {"field": "kyc_current_level", "value": "two"}}])
    with pytest.raises(ValidationFailed) as caught:
        before(auto, NEW_CUSTOMER)
    assert caught.value.details == [{"path": "record.kyc_current_level", "message": "must be an integer, got 'two'"}]


def test_an_ill_typed_record_is_refused_before_any_rule_runs(auto):
    rule = auto.add_rule(trigger="customer.beforeCreate",
                         actions=[{"type": "notify.manager", "params": {"message": "x"}}])
    with pytest.raises(ValidationFailed):
        before(auto, {**NEW_CUSTOMER, "kyc_current_level": "1"})
    with pytest.raises(ValidationFailed):
        before(auto, {"email": "no id"}, operation="update")
    assert auto.runs(rule_id=rule["id"]) == []


def test_account_hooks_find_the_brand_through_the_group(auto):
    auto.add_rule(trigger="account.beforeCreate",
                  conditions=[{"field": "account.leverage", "op": ">", "value": 100}],
                  actions=[{"type": "record.set", "params": {"field": "leverage", "value": 100}}])
    auto.add_rule(trigger="account.beforeCreate", brand="beta",
                  actions=[{"type": "operation.reject", "params": {"message": "beta is closed"}}])
    body = before(auto, {"login": 20001, "group": "real\\alpha", "leverage": 500}, resource="account")
    assert body == {"record": {"login": 20001, "group": "real\\alpha", "leverage": 100}, "changed": True}
    with pytest.raises(Rejected):
        before(auto, {"login": 20002, "group": "real\\beta", "leverage": 50}, resource="account")
    # an update without the group: the stored account's group decides
    body = before(auto, {"login": 10001, "leverage": 400}, resource="account", operation="update")
    assert body["record"]["leverage"] == 400  # beforeUpdate has no rules


def test_a_hook_slower_than_its_budget_cancels_the_operation(make_auto):
    auto = make_auto(extra={"before_budget_ms": "300"})
    auto.add_rule(trigger="customer.beforeCreate",
                  actions=[{"type": "webhook.send", "params": {"url": auto.hooks_url + "/slow", "timeout_ms": 5000}}])
    with pytest.raises(ActionFailed) as caught:
        before(auto, NEW_CUSTOMER)
    assert "300 ms budget" in caught.value.text


def test_only_an_admin_may_run_before_hooks_and_a_scoped_one_only_for_its_brand(auto):
    """Before runs the rules' actions for real (notifications, webhooks, customer changes), so it
    needs the role that executing actions needs; a read-only role runs nothing."""
    rule = auto.add_rule(trigger="customer.beforeCreate",
                         actions=[{"type": "record.set", "params": {"field": "risk_level", "value": "medium"}}])
    with pytest.raises(AccessDenied):
        before(auto, NEW_CUSTOMER, client=auto.manager)
    scoped = auto.client(auto.engine.store.tokens.create("SESSION_ADMIN", brand="alpha", name="alpha admin")[0])
    with pytest.raises(AccessDenied):
        before(auto, {**NEW_CUSTOMER, "id": 701, "brand": "beta"}, client=scoped)
    assert before(auto, NEW_CUSTOMER, client=scoped)["changed"] is True
    assert len(auto.runs(rule_id=rule["id"])) == 1  # the hook answers once its run is logged
