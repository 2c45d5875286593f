"""Brand scoping: a rule sees only its brand's events; an event without a brand runs nothing."""

from __future__ import annotations

from tests.runtime.conftest import notify


def brand_rules(runtime, trigger="deposit.created"):
    return {brand: runtime.rule(trigger, [notify(brand, manager_id=7)], brand=brand)
            for brand in ("alpha", "beta")}


def fired(runtime, rules):
    ids = {rule["id"]: brand for brand, rule in rules.items()}
    return sorted(ids[run["rule_id"]] for run in runtime.runs() if run["rule_id"] in ids)


def test_a_trade_runs_the_rules_of_its_groups_brand_only(runtime):
    rules = brand_rules(runtime)
    runtime.deposit(2001, 10)  # beta-usd
    runtime.settle()
    assert fired(runtime, rules) == ["beta"]
    runtime.deposit(1001, 10)  # real-usd
    runtime.settle()
    assert fired(runtime, rules) == ["alpha", "beta"]
    assert {run["brand"] for run in runtime.runs()} == {"alpha", "beta"}


def test_the_trading_group_decides_the_brand_not_the_customer(runtime):
    runtime.upsert("Customer", {"id": 701, "brand": "beta", "email": "x@example.com"})
    runtime.upsert("Account", {"login": 1006, "group": "real-usd", "customer_id": 701})
    rules = brand_rules(runtime)
    runtime.deposit(1006, 10)
    runtime.settle()
    assert fired(runtime, rules) == ["alpha"]


def test_customer_and_kyc_events_use_the_customers_brand(runtime):
    updated = brand_rules(runtime, "customer.updated")
    approved = brand_rules(runtime, "kyc.step.approved")
    runtime.publish("customer.push", {"id": 601, "language": "ca"}, event="EV_RECORD_UPDATE")
    runtime.publish("kyc.step.push", {"customer_id": 601, "step_code": "ID", "level": 1, "status": "approved"},
                    event=None)
    runtime.settle()
    assert fired(runtime, updated) == ["beta"]
    assert fired(runtime, approved) == ["beta"]


def test_an_unresolved_brand_skips_the_rules_and_is_counted(runtime, caplog):
    caplog.set_level("INFO", logger="brokerflow.router")
    rules = brand_rules(runtime)
    customer_rules = brand_rules(runtime, "customer.updated")
    runtime.deposit(3001, 10)   # group without a brand
    runtime.deposit(3002, 10)   # group nobody knows
    runtime.deposit(4444, 10)   # account nobody knows
    runtime.publish("customer.push", {"id": 801, "email": "nobrand@example.com"}, event="EV_RECORD_UPDATE")
    runtime.publish("kyc.step.push", {"customer_id": 802, "step_code": "ID", "status": "approved"}, event=None)
    runtime.settle()
    assert fired(runtime, rules) == [] and fired(runtime, customer_rules) == []
    assert runtime.runs() == []
    assert runtime.stats()["bus"]["skipped_no_brand"] == 5
    assert caplog.text.count("no brand resolved") == 5
