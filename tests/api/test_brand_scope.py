"""Brand-scoped tokens: a token created with brand B sees and touches only brand B."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from tests.api.conftest import deposit_rule, manual_rule
from tests.api.test_flows import ONBOARDING
from tests.api.test_roles import DEPOSIT


@pytest.fixture
def scoped(api):
    api.scoped_admin = api.alpha["SESSION_ADMIN"]
    api.scoped_reader = api.alpha["SESSION_CRM_MANAGER"]
    api.alpha_rule = api.body("MngAddWorkflowRule", {"rule": deposit_rule("alpha")})["rule"]
    api.beta_rule = api.body("MngAddWorkflowRule", {"rule": deposit_rule("beta")})["rule"]
    return api


def _denied(api, cmd, params, token):
    error = api.error(cmd, params, token=token)
    assert error["code"] == "ACCESS_DENIED", (cmd, error)
    return error


def test_a_scoped_admin_adds_rules_for_its_brand_only(scoped):
    assert scoped.body("MngAddWorkflowRule", {"rule": deposit_rule("alpha")}, token=scoped.scoped_admin)
    error = _denied(scoped, "MngAddWorkflowRule", {"rule": deposit_rule("beta")}, scoped.scoped_admin)
    assert "alpha" in error["text"] and "beta" in error["text"]
    assert [r["brand"] for r in scoped.body("MngGetWorkflowRules")["rules"]].count("beta") == 1


def test_another_brands_rule_cannot_be_read_changed_or_removed(scoped):
    rule_id = scoped.beta_rule["id"]
    for token in (scoped.scoped_admin, scoped.scoped_reader):
        _denied(scoped, "MngGetWorkflowRule", {"id": rule_id}, token)
        _denied(scoped, "MngTestWorkflowRule", {"id": rule_id, "event": DEPOSIT}, token)
    for cmd, params in (("MngUpdateWorkflowRule", {"id": rule_id, "version": 1, "rule": {"priority": 1}}),
                        ("MngArchiveWorkflowRule", {"id": rule_id}),
                        ("MngDeleteWorkflowRule", {"id": rule_id})):
        _denied(scoped, cmd, params, scoped.scoped_admin)
    assert scoped.body("MngGetWorkflowRule", {"id": rule_id})["rule"] == scoped.beta_rule


def test_its_own_rules_are_fully_manageable_but_not_movable_to_another_brand(scoped):
    rule_id, token = scoped.alpha_rule["id"], scoped.scoped_admin
    assert scoped.body("MngGetWorkflowRule", {"id": rule_id}, token=token)["rule"]["brand"] == "alpha"
    _denied(scoped, "MngUpdateWorkflowRule", {"id": rule_id, "version": 1, "rule": {"brand": "beta"}}, token)
    updated = scoped.body("MngUpdateWorkflowRule", {"id": rule_id, "version": 1, "rule": {"priority": 1}},
                          token=token)["rule"]
    assert updated["version"] == 2
    assert scoped.body("MngArchiveWorkflowRule", {"id": rule_id}, token=token)["rule"]["status"] == "archived"
    assert scoped.body("MngDeleteWorkflowRule", {"id": rule_id}, token=token) == {}


def test_lists_show_only_the_scoped_brand_and_asking_for_another_is_denied(scoped):
    rules = scoped.body("MngGetWorkflowRules", token=scoped.scoped_reader)["rules"]
    assert [r["id"] for r in rules] == [scoped.alpha_rule["id"]]
    assert scoped.body("MngGetWorkflowRules", {"brand": "alpha"}, token=scoped.scoped_reader)["rules"] == rules
    _denied(scoped, "MngGetWorkflowRules", {"brand": "beta"}, scoped.scoped_reader)
    assert len(scoped.body("MngGetWorkflowRules")["rules"]) == 2


def test_testing_a_rule_of_or_an_event_of_another_brand_is_denied(scoped):
    token = scoped.scoped_reader
    _denied(scoped, "MngTestWorkflowRule", {"rule": deposit_rule("beta"), "event": DEPOSIT}, token)
    scoped.body("MngUpsertGroup", {"record": {"group": "real\\beta", "brand": "beta", "currency": "USD"}})
    scoped.body("MngUpsertAccount", {"record": {"login": 1001, "group": "real\\beta"}})
    _denied(scoped, "MngTestWorkflowRule", {"rule": deposit_rule("alpha"), "event": DEPOSIT}, token)
    body = scoped.body("MngTestWorkflowRule", {"rule": deposit_rule("beta"), "event": DEPOSIT})
    assert body["matched"] is True


def test_reference_writes_stay_in_the_brand(scoped):
    admin, token = scoped.body, scoped.scoped_admin
    admin("MngUpsertGroup", {"record": {"group": "g-alpha", "brand": "alpha"}})
    admin("MngUpsertGroup", {"record": {"group": "g-beta", "brand": "beta"}})
    admin("MngUpsertCustomer", {"record": {"id": 2, "brand": "beta"}})
    assert admin("MngUpsertGroup", {"record": {"group": "g-alpha2", "brand": "alpha"}}, token=token)
    assert admin("MngUpsertAccount", {"record": {"login": 1, "group": "g-alpha"}}, token=token)
    assert admin("MngUpsertCustomer", {"record": {"id": 1, "brand": "alpha"}}, token=token)
    assert admin("MngUpsertKycStepTemplate", {"record": {"brand": "alpha", "step_code": "POI"}}, token=token)
    assert admin("MngUpsertManager", {"record": {"id": 1, "brand": "alpha"}}, token=token)
    for cmd, record in (
        ("MngUpsertGroup", {"group": "g-beta2", "brand": "beta"}),
        ("MngUpsertGroup", {"group": "g-alpha", "brand": "beta"}),      # moving its own group away
        ("MngUpsertGroup", {"group": "g-beta", "brand": "alpha"}),      # taking another brand's group
        ("MngUpsertAccount", {"login": 2, "group": "g-beta"}),
        ("MngUpsertAccount", {"login": 3, "group": "unknown"}),
        ("MngUpsertCustomer", {"id": 2, "email": "x@y.z"}),             # a partial update of beta's customer
        ("MngUpsertCustomer", {"id": 2, "brand": "alpha"}),
        ("MngUpsertKycStepTemplate", {"brand": "beta", "step_code": "POI"}),
        ("MngUpsertManager", {"id": 2}),                                # brand-less: shared by all brands
        ("MngUpsertRate", {"currency": "EUR", "usd": 1.1}),             # rates are global
    ):
        _denied(scoped, cmd, {"record": record}, token)
    assert scoped.body("MngGetCustomers", {"id": 2})["records"] == [{"id": 2, "brand": "beta"}]
    assert admin("MngUpsertRate", {"record": {"currency": "EUR", "usd": 1.1}})


def test_reference_reads_show_the_brand_and_the_shared_records(scoped):
    admin = scoped.body
    for kind, record in (("Group", {"group": "g-alpha", "brand": "alpha"}),
                         ("Group", {"group": "g-beta", "brand": "beta"}),
                         ("Account", {"login": 1, "group": "g-alpha"}), ("Account", {"login": 2, "group": "g-beta"}),
                         ("Customer", {"id": 1, "brand": "alpha"}), ("Customer", {"id": 2, "brand": "beta"}),
                         ("Manager", {"id": 1, "brand": "alpha"}), ("Manager", {"id": 2, "brand": "beta"}),
                         ("Manager", {"id": 3}), ("Rate", {"currency": "EUR", "usd": 1.1}),
                         ("KycStepTemplate", {"brand": "alpha", "step_code": "A"}),
                         ("KycStepTemplate", {"brand": "beta", "step_code": "B"})):
        admin(f"MngUpsert{kind}", {"record": record})
    token = scoped.scoped_reader

    def keys(kind, field, **filters):
        return [r[field] for r in admin(f"MngGet{kind}s", filters, token=token)["records"]]

    assert keys("Group", "group") == ["g-alpha"]
    assert keys("Account", "login") == [1]
    assert keys("Customer", "id") == [1]
    assert keys("Manager", "id") == [1, 3]
    assert keys("Rate", "currency") == ["EUR"]
    assert keys("KycStepTemplate", "step_code") == ["A"]
    assert keys("Customer", "id", id=2) == []
    _denied(scoped, "MngGetCustomers", {"brand": "beta"}, token)
    assert len(admin("MngGetCustomers")["records"]) == 2


def test_kyc_profiles_of_another_brand_are_denied(scoped):
    store = scoped.services.store
    store.kyc.save_profile({"customer_id": 1, "brand": "alpha", "steps": []})
    store.kyc.save_profile({"customer_id": 2, "brand": "beta", "steps": []})
    profile = scoped.body("MngGetKycProfile", {"customer_id": 1}, token=scoped.scoped_reader)["profile"]
    assert profile["brand"] == "alpha"
    _denied(scoped, "MngGetKycProfile", {"customer_id": 2}, scoped.scoped_reader)


def test_flows_are_shared_read_by_all_and_changed_only_by_unscoped_admins(scoped):
    scoped.body("MngAddFlow", {"flow": ONBOARDING})
    assert [f["name"] for f in scoped.body("MngGetFlows", token=scoped.scoped_reader)["flows"]] == ["onboarding"]
    _denied(scoped, "MngAddFlow", {"flow": {**ONBOARDING, "name": "mine"}}, scoped.scoped_admin)
    _denied(scoped, "MngUpdateFlow", {"flow": ONBOARDING}, scoped.scoped_admin)
    _denied(scoped, "MngDeleteFlow", {"name": "onboarding"}, scoped.scoped_admin)


def test_exec_and_before_hooks_stay_in_the_brand(scoped):
    def done(rule, input, principal):
        fut: Future = Future()
        fut.set_result({"run": {"rule_id": rule["id"]}, "trace": []})
        return fut

    scoped.services.exec_handler = done
    scoped.services.before_handler = lambda resource, operation, record, principal: {"record": record, "changed": False}
    alpha = scoped.body("MngAddWorkflowRule", {"rule": manual_rule("alpha", ["SESSION_CRM_MANAGER"])})["rule"]
    beta = scoped.body("MngAddWorkflowRule", {"rule": manual_rule("beta", ["SESSION_CRM_MANAGER"])})["rule"]
    token = scoped.scoped_reader
    assert scoped.body("MngExecWorkflowRule", {"id": alpha["id"]}, token=token)["run"]["rule_id"] == alpha["id"]
    _denied(scoped, "MngExecWorkflowRule", {"id": beta["id"]}, token)
    hook = {"resource": "customer", "operation": "create"}
    assert scoped.body("Before", {**hook, "record": {"id": 5, "brand": "alpha"}}, token=scoped.scoped_admin)
    _denied(scoped, "Before", {**hook, "record": {"id": 6, "brand": "beta"}}, scoped.scoped_admin)


def test_a_mode_dry_run_with_another_brands_record_is_denied(scoped):
    rule = {"name": "hook", "brand": "alpha", "trigger": "customer.beforeCreate",
            "conditions": [{"field": "customer.country", "op": "==", "value": "CY"}],
            "actions": [{"type": "record.set", "params": {"field": "risk_level", "value": "low"}}]}
    own = {"topic": "customer.beforeCreate", "payload": {"record": {"id": 9, "brand": "alpha", "country": "CY"}}}
    other = {"topic": "customer.beforeCreate", "payload": {"record": {"id": 9, "brand": "beta", "country": "CY"}}}
    assert scoped.body("MngTestWorkflowRule", {"rule": rule, "event": own}, token=scoped.scoped_reader)
    _denied(scoped, "MngTestWorkflowRule", {"rule": rule, "event": other}, scoped.scoped_reader)


@pytest.fixture
def beta_records(scoped):
    """Beta's stored records, with fields a dry run would show in its ``actual`` values."""
    admin = scoped.body
    admin("MngUpsertGroup", {"record": {"group": "g-alpha", "brand": "alpha", "currency": "USD"}})
    admin("MngUpsertGroup", {"record": {"group": "g-beta", "brand": "beta", "currency": "USD"}})
    admin("MngUpsertCustomer", {"record": {"id": 2, "brand": "beta", "email": "secret@beta.example",
                                           "country": "CY"}})
    admin("MngUpsertAccount", {"record": {"login": 2002, "group": "g-beta", "email": "acct@beta.example",
                                          "customer_id": 2}})
    admin("MngUpsertAccount", {"record": {"login": 3003, "group": "no-such-group", "customer_id": 2}})
    return scoped


def _push(topic, record):
    return {"topic": topic, "payload": {"event": "EV_RECORD_UPDATE", "record": record}}


def test_a_dry_run_never_shows_another_brands_stored_records(beta_records):
    api, token = beta_records, beta_records.scoped_reader
    rule = deposit_rule("alpha", trigger="customer.updated",
                        conditions=[{"field": "customer.email", "op": "==", "value": "x"}])
    account_rule = deposit_rule("alpha", trigger="account:updated",
                                conditions=[{"field": "customer.email", "op": "==", "value": "x"}])
    for test_rule, event in (
        (rule, _push("customer.push", {"id": 2, "brand": "alpha"})),           # claims alpha, merges beta's
        (account_rule, _push("account.push", {"login": 2002, "group": "g-alpha"})),
        (account_rule, _push("account.push", {"login": 4004, "group": "g-alpha", "customer_id": 2})),
        (deposit_rule("alpha", conditions=rule["conditions"]), {"topic": "trade.push", "payload": {
            "event": "EV_RECORD_ADD", "record": {"order": 9, "login": 3003, "cmd": "OP_BALANCE_IN",
                                                 "profit": 2000.0}}}),  # no brand, but beta's customer
    ):
        error = _denied(api, "MngTestWorkflowRule", {"rule": test_rule, "event": event}, token)
        assert "secret" not in error["text"]
        unscoped = api.body("MngTestWorkflowRule", {"rule": test_rule, "event": event})
        assert unscoped["conditions"][0]["actual"] == "secret@beta.example"  # what the scoped token must not see
    own = api.body("MngTestWorkflowRule", {"rule": rule, "event": _push("customer.push", {"id": 7, "brand": "alpha"})},
                   token=token)
    assert own["conditions"][0]["actual"] is None
    unknown = {"topic": "trade.push", "payload": {"event": "EV_RECORD_ADD", "record": {
        "order": 9, "login": 5005, "cmd": "OP_BALANCE_IN", "profit": 2000.0}}}
    assert api.body("MngTestWorkflowRule", {"rule": deposit_rule("alpha"), "event": unknown}, token=token)


def test_a_before_hook_dry_run_never_merges_another_brands_stored_record(beta_records):
    api, token = beta_records, beta_records.scoped_reader
    hook = {"name": "hook", "brand": "alpha", "trigger": "customer.beforeUpdate",
            "conditions": [{"field": "customer.email", "op": "==", "value": "x"}],
            "actions": [{"type": "record.set", "params": {"field": "risk_level", "value": "low"}}]}
    account_hook = {**hook, "trigger": "account.beforeUpdate",
                    "conditions": [{"field": "account.email", "op": "==", "value": "x"}]}
    for test_rule, record in ((hook, {"id": 2}), (hook, {"id": 2, "brand": "alpha"}),
                              (account_hook, {"login": 2002}), (account_hook, {"login": 2002, "group": "g-alpha"}),
                              (account_hook, {"login": 3003, "group": "g-alpha"})):
        event = {"topic": test_rule["trigger"], "payload": record}
        _denied(api, "MngTestWorkflowRule", {"rule": test_rule, "event": event}, token)
    shown = api.body("MngTestWorkflowRule", {"rule": hook, "event": {
        "topic": "customer.beforeUpdate", "payload": {"id": 2, "brand": "alpha"}}})
    assert shown["conditions"][0]["actual"] == "secret@beta.example"  # what the scoped token must not see
    own = {"topic": "customer.beforeUpdate", "payload": {"id": 8, "brand": "alpha", "email": "x"}}
    assert api.body("MngTestWorkflowRule", {"rule": hook, "event": own}, token=token)["matched"] is True
