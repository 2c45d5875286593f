"""Dry runs: why a rule would or would not match, and what it would do, with no side effect."""

from __future__ import annotations

import copy

import pytest

from brokerflow.workflow.events import Event
from brokerflow.workflow.reference import ReferenceData
from brokerflow.workflow.rules.dryrun import dry_run


@pytest.fixture
def refs():
    refs = ReferenceData()
    refs.apply("group", {"group": "real\\eur", "brand": "acme", "currency": "EUR"})
    refs.apply("group", {"group": "real\\chf", "brand": "acme", "currency": "CHF"})
    refs.apply("rate", {"currency": "EUR", "usd": 1.1})
    refs.apply("account", {"login": 1001, "group": "real\\eur", "customer_id": 7})
    refs.apply("account", {"login": 1002, "group": "real\\chf", "customer_id": 7})
    refs.apply("customer", {"id": 7, "brand": "acme", "kyc_current_level": 0})
    return refs


def deposit(login=1001, profit=1000.0):
    return Event("trade.push", "EV_RECORD_ADD",
                 {"order": 9, "login": login, "cmd": "OP_BALANCE_IN", "profit": profit}, id="e1")


def make_rule(**changes):
    rule = {
        "id": 1, "name": "KYC on deposit", "brand": "acme", "trigger": "deposit.created", "status": "active",
        "priority": 100,
        "conditions": [{"field": "amount_usd", "op": ">=", "value": 1},
                       {"field": "customer.kyc_current_level", "op": "<", "value": 1}],
        "actions": [
            {"type": "kyc.set_required_level", "params": {"level": 1, "reason": "deposit"}},
            {"type": "notify.manager", "params": {"message": "Deposit {{amount_usd}} by {{trade.login}}"}},
            {"type": "webhook.send", "params": {"url": "https://example.com/h",
                                                "body": '{"login": {{trade.login}}, "x": {"y": 1}}'}},
        ],
    }
    rule.update(changes)
    return rule


def test_a_matching_rule_lists_its_actions_rendered(refs):
    result = dry_run(make_rule(), deposit(), refs)
    assert result["matched"] is True and result["reason"] is None
    assert result["trigger"] == "deposit.created" and result["brand"] == "acme"
    assert [row["result"] for row in result["conditions"]] == [True, True]
    assert result["conditions"][0]["actual"] == pytest.approx(1100.0)
    assert result["actions"] == [
        {"type": "kyc.set_required_level", "executor": "kyc", "params": {"level": 1, "reason": "deposit"}},
        {"type": "notify.manager", "executor": "notifier", "params": {"message": "Deposit 1100.0 by 1001"}},
        {"type": "webhook.send", "executor": "webhook",
         "params": {"url": "https://example.com/h", "body": '{"login": 1001, "x": {"y": 1}}'}},
    ]


def test_failing_conditions_do_not_match_and_list_no_actions(refs):
    refs.apply("customer", {"id": 7, "kyc_current_level": 2})
    result = dry_run(make_rule(), deposit(), refs)
    assert result["matched"] is False and result["reason"] is None
    assert [row["result"] for row in result["conditions"]] == [True, False]
    assert result["actions"] == []


def test_unknown_rate_is_a_skip_reason(refs):
    result = dry_run(make_rule(), deposit(login=1002), refs)
    assert result["matched"] is False
    assert result["reason"] == "amount_usd unknown: no USD rate for CHF"
    assert result["conditions"][0]["actual"] is None


@pytest.mark.parametrize(("changes", "event", "reason"), [
    ({"status": "disabled"}, None, "rule is not active (status disabled)"),
    ({"status": "archived"}, None, "rule is not active (status archived)"),
    ({"trigger": "trade.opened"}, None,
     "trigger mismatch: the event is deposit.created, the rule listens to trade.opened"),
    ({"brand": "zeta"}, None, "brand mismatch: the event is of brand acme, the rule of brand zeta"),
    ({}, Event("trade.push", "EV_RECORD_UPDATE", {"order": 9, "login": 1001, "cmd": "OP_BUY"}),
     "trade.push EV_RECORD_UPDATE maps to no trigger"),
])
def test_gate_reasons(refs, changes, event, reason):
    result = dry_run(make_rule(**changes), event or deposit(), refs)
    assert result["matched"] is False and result["reason"] == reason and result["actions"] == []


def test_unresolved_brand(refs):
    result = dry_run(make_rule(), deposit(login=5555), refs)
    assert result["matched"] is False and result["brand"] is None
    assert result["reason"].startswith("brand unresolved: login 5555")


def test_unresolved_customer_brand(refs):
    event = Event("kyc.step.push", None, {"customer_id": 99, "step_code": "POI", "status": "approved"})
    result = dry_run(make_rule(trigger="kyc.step.approved", conditions=[]), event, refs)
    assert result["reason"] == "brand unresolved: the customer is unknown or has no brand"


def test_a_rule_without_conditions_matches_its_trigger_and_brand(refs):
    result = dry_run(make_rule(conditions=[], actions=[]), deposit(), refs)
    assert result == {"matched": True, "trigger": "deposit.created", "brand": "acme", "reason": None,
                      "conditions": [], "actions": []}


def test_no_side_effects(refs):
    rule = make_rule()
    before_rule, before_refs = copy.deepcopy(rule), copy.deepcopy(vars(refs))
    dry_run(rule, deposit(), refs)
    dry_run(rule, Event("account.push", "EV_RECORD_UPDATE", {"login": 1001, "group": "x"}), refs)
    assert rule == before_rule
    assert {k: v for k, v in vars(refs).items() if k != "_flat"} == \
        {k: v for k, v in before_refs.items() if k != "_flat"}
