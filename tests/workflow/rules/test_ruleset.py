"""Rule sets: active rules only, indexed by trigger, in (priority, id) order."""

from __future__ import annotations

import dataclasses

import pytest

from brokerflow.workflow.rules.ruleset import CompiledRule, RuleSet


def rule(id, trigger="deposit.created", priority=100, status="active", brand="acme", **extra):
    return {"id": id, "version": 1, "name": f"r{id}", "brand": brand, "trigger": trigger,
            "status": status, "priority": priority, "conditions": [], "actions": [], **extra}


def test_only_active_rules_are_compiled():
    rules = [rule(1), rule(2, status="disabled"), rule(3, status="archived"), rule(4)]
    ruleset = RuleSet.from_rules(rules)
    assert [r.id for r in ruleset.for_trigger("deposit.created")] == [1, 4]
    assert len(ruleset) == 2


def test_a_rule_without_status_is_active():
    rules = [{"id": 1, "trigger": "trade.opened"}]
    assert len(RuleSet.from_rules(rules)) == 1


def test_rules_are_indexed_by_trigger():
    ruleset = RuleSet.from_rules([rule(1, "trade.opened"), rule(2, "trade.closed"), rule(3, "trade.opened")])
    assert [r.id for r in ruleset.for_trigger("trade.opened")] == [1, 3]
    assert [r.id for r in ruleset.for_trigger("trade.closed")] == [2]
    assert ruleset.for_trigger("customer.created") == ()
    assert ruleset.triggers == {"trade.opened", "trade.closed"}


def test_lower_priority_runs_first_then_lower_id():
    ruleset = RuleSet.from_rules([rule(5, priority=10), rule(2, priority=100), rule(1, priority=100),
                                  rule(9, priority=1)])
    assert [r.id for r in ruleset.for_trigger("deposit.created")] == [9, 5, 1, 2]


def test_ordering_tolerates_missing_and_non_int_ids():
    ruleset = RuleSet.from_rules([rule(None), rule("b"), rule(3)])
    assert [r.id for r in ruleset.for_trigger("deposit.created")] == [3, None, "b"]


def test_compiled_rule_carries_predicate_actions_and_definition():
    definition = rule(7, conditions=[{"field": "amount_usd", "op": ">=", "value": 100}],
                      actions=[{"type": "notify.manager", "params": {"message": "big"}}], run_as=42)
    compiled = RuleSet.from_rules([definition]).for_trigger("deposit.created")[0]
    assert isinstance(compiled, CompiledRule)
    assert (compiled.id, compiled.version, compiled.name, compiled.brand) == (7, 1, "r7", "acme")
    assert compiled.trigger == "deposit.created" and compiled.priority == 100 and compiled.run_as == 42
    assert compiled.actions == ({"type": "notify.manager", "params": {"message": "big"}},)
    assert compiled.predicate({"amount_usd": 150}) and not compiled.predicate({"amount_usd": 50})
    assert compiled.rule == definition
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.priority = 1


def test_missing_priority_defaults_to_100():
    ruleset = RuleSet.from_rules([{"id": 1, "trigger": "t", "priority": None},
                                  {"id": 2, "trigger": "t", "priority": 50}])
    assert [(r.id, r.priority) for r in ruleset.for_trigger("t")] == [(2, 50), (1, 100)]


def test_rules_without_a_trigger_are_ignored():
    assert len(RuleSet.from_rules([{"id": 1}, {"id": 2, "trigger": None}])) == 0


def test_by_brand_splits_active_rules():
    sets = RuleSet.by_brand([
        rule(1, brand="acme"), rule(2, brand="zeta"), rule(3, brand="acme"),
        rule(4, brand="zeta", status="disabled"), rule(5, brand="off", status="archived"),
    ])
    assert set(sets) == {"acme", "zeta"}
    assert [r.id for r in sets["acme"]] == [1, 3]
    assert len(sets["zeta"]) == 1


def test_empty_rule_set():
    ruleset = RuleSet.from_rules([])
    assert len(ruleset) == 0 and list(ruleset) == [] and ruleset.for_trigger("x") == ()
