"""The seed's own example, end to end: a first deposit makes KYC level 1 required.

"create a rule on deposit.created with conditions such as amount_usd >= 1 and
customer.kyc_current_level < 1, then execute kyc.set_required_level with level = 1."
"""

from __future__ import annotations

from tests.conftest import wait_until

SEED_RULE = {
    "conditions": [{"field": "amount_usd", "op": ">=", "value": 1},
                   {"field": "customer.kyc_current_level", "op": "<", "value": 1}],
    "actions": [{"type": "kyc.set_required_level", "params": {"level": 1, "reason": "first deposit"}}],
}


def seed_rule(runtime):
    return runtime.rule("deposit.created", SEED_RULE["actions"], SEED_RULE["conditions"],
                        name="First deposit needs KYC level 1")


def test_a_first_deposit_requires_kyc_level_1_with_the_brands_templates(runtime):
    rule = seed_rule(runtime)
    runtime.deposit(1001, 100)  # customer 501, KYC level 0
    run = runtime.wait_run(rule)
    assert run["status"] == "success"
    assert run["actions"][0]["type"] == "kyc.set_required_level"
    assert (run["actions"][0]["changed"], run["actions"][0]["required_level"]) == (True, 1)

    profile = runtime.call("MngGetKycProfile", {"customer_id": 501})["profile"]
    assert profile["required_level"] == 1 and profile["current_level"] == 0
    # Active *required* templates of the brand with level <= 1: not SELFIE (level 2), not VIDEO
    # (optional), not OLD (inactive), not beta's.
    assert [(s["step_code"], s["level"], s["status"], s["reason"]) for s in profile["steps"]] == [
        ("ID", 1, "required", "first deposit"), ("POA", 1, "required", "first deposit")]

    wait_until(lambda: runtime.outbound.of("kyc.changed"))
    [change] = runtime.outbound.of("kyc.changed")
    assert set(change) == {"customer_id", "required_level", "steps", "rule_id", "run_id"}
    assert (change["customer_id"], change["required_level"], change["rule_id"], change["run_id"]) == (
        501, 1, rule["id"], run["id"])
    assert [s["step_code"] for s in change["steps"]] == ["ID", "POA"]


def test_the_rule_does_not_fire_below_one_dollar_or_for_a_verified_customer(runtime):
    rule = seed_rule(runtime)
    runtime.deposit(1001, 0.5)  # customer 501: under 1 USD
    runtime.deposit(1002, 100)  # customer 502: KYC level 1 already
    runtime.settle()
    assert runtime.runs(rule_id=rule["id"]) == []
    assert runtime.outbound.of("kyc.changed") == []


def test_the_level_only_goes_up_so_a_second_deposit_changes_nothing(runtime):
    rule = seed_rule(runtime)
    runtime.deposit(1001, 100)
    runtime.wait_run(rule)
    runtime.deposit(1001, 100)  # the CRM has not raised kyc_current_level: the rule fires again
    second = runtime.wait_runs(2, rule_id=rule["id"])[0]
    assert (second["status"], second["actions"][0]["changed"]) == ("success", False)
    runtime.settle()
    assert len(runtime.outbound.of("kyc.changed")) == 1
    higher = runtime.rule("withdrawal.created", [{"type": "kyc.set_required_level", "params": {"level": 2}}])
    runtime.publish("trade.push", {"order": 1, "login": 1001, "cmd": "OP_BALANCE_OUT", "profit": -5.0})
    runtime.wait_run(higher)
    profile = runtime.call("MngGetKycProfile", {"customer_id": 501})["profile"]
    assert profile["required_level"] == 2
    assert [s["step_code"] for s in profile["steps"]] == ["ID", "POA", "SELFIE"]


def test_a_eur_deposit_is_converted_before_the_condition(runtime):
    runtime.upsert("Customer", {"id": 502, "kyc_current_level": 0})
    rule = seed_rule(runtime)
    runtime.deposit(1002, 0.95)  # EUR at 1.1 = 1.045 USD
    assert runtime.wait_run(rule)["status"] == "success"
