"""``RuleSet.matching`` yields exactly what calling every rule of the trigger in order yields.

The reference is the rule actor's plain loop: each rule of ``for_trigger`` in order, run when
its predicate holds, else logged as skipped when ``missing_reason`` names a reason. Seeded
random rules and contexts cover the index's edges: missing fields, None, bools against
numbers, NaN, str/int subclasses, unhashable values, empty lists and missing-value reasons.
"""

from __future__ import annotations

import enum
import random
from decimal import Decimal
from typing import Any

import pytest

from brokerflow.app import benchdata
from brokerflow.workflow.context import build_context
from brokerflow.workflow.events import Event
from brokerflow.workflow.reference import ReferenceData
from brokerflow.workflow.rules.conditions import compile_conditions, missing_reason
from brokerflow.workflow.rules.ruleset import CompiledRule, RuleSet
from brokerflow.workflow.triggers import map_trigger


def plain(ruleset: RuleSet, trigger: str, ctx: dict[str, Any]) -> list[tuple[Any, str | None]]:
    out = []
    for rule in ruleset.for_trigger(trigger):
        if rule.predicate(ctx):
            out.append((rule.id, None))
        else:
            reason = missing_reason(rule.rule.get("conditions", []), ctx)
            if reason is not None:
                out.append((rule.id, reason))
    return out


def fast(ruleset: RuleSet, trigger: str, ctx: dict[str, Any]) -> list[tuple[Any, str | None]]:
    return [(rule.id, reason) for rule, reason in ruleset.matching(trigger, ctx)]


class Level(enum.IntEnum):
    ONE = 1


class Code(str):
    pass


FIELDS = ("a", "b", "c", "d")
VALUES = (None, True, False, 0, 1, 1.0, 2, -3, 2.5, 100, 10**20, float("nan"), float("inf"), "", "x", "y", "xy",
          "CY", "hedge-1", Code("x"), Level.ONE, Decimal(1), [1, 2], ("x",), {"k": 1})
OPS = ("==", "!=", ">", ">=", "<", "<=", "in", "not_in", "contains", "starts_with", "ends_with", "matches", "bogus")


def random_value(rng: random.Random, op: str) -> Any:
    if op in ("in", "not_in", "starts_with", "ends_with") and rng.random() < 0.6:
        return [rng.choice(VALUES[:-3]) for _ in range(rng.randrange(0, 4))]
    if op == "matches":
        return rng.choice(("^x", "y$", "[", 5, "hedge"))
    return rng.choice(VALUES)


def random_rules(rng: random.Random, count: int) -> list[dict[str, Any]]:
    rules = []
    for n in range(count):
        conditions: list[Any] = []
        for _ in range(rng.randrange(0, 4)):
            op = rng.choice(OPS)
            conditions.append({"field": rng.choice(FIELDS), "op": op, "value": random_value(rng, op)})
        if rng.random() < 0.05:
            conditions.append("not a condition")
        rules.append({"id": rng.choice((n, f"r{n}")), "trigger": rng.choice(("t1", "t2")),
                      "priority": rng.randrange(0, 5), "conditions": conditions, "actions": []})
    return rules


def random_context(rng: random.Random) -> dict[str, Any]:
    ctx = {name: rng.choice(VALUES) for name in FIELDS if rng.random() < 0.85}
    if rng.random() < 0.2:
        ctx["_missing"] = {rng.choice(FIELDS): "unknown for a reason"}
    return ctx


@pytest.mark.parametrize("seed", range(8))
def test_random_rules_and_contexts_match_the_plain_loop(seed):
    rng = random.Random(seed)
    ruleset = RuleSet.from_rules(random_rules(rng, 60))
    for _ in range(400):
        ctx, trigger = random_context(rng), rng.choice(("t1", "t2", "t3"))
        assert fast(ruleset, trigger, ctx) == plain(ruleset, trigger, ctx)


def test_the_benchmark_rules_match_the_plain_loop_on_the_benchmark_stream():
    refs = ReferenceData()
    kinds = {"Group": "group", "Account": "account", "Customer": "customer", "Rate": "rate"}
    for name, records in benchdata.reference("http://hooks.invalid").items():
        if name in kinds:
            refs.load(kinds[name], records)
    rules = [{**rule, "id": n} for n, rule in enumerate(benchdata.rules("http://hooks.invalid"))]
    sets = RuleSet.by_brand(rules)
    matched = 0
    for seq, (topic, record, name) in enumerate(benchdata.events(1500, seed=11), 1):
        event = Event(topic, name, record, source="bench", seq=seq)
        trigger = map_trigger(event)
        ctx = build_context(trigger, event, refs)
        expected = plain(sets[ctx["brand"]], trigger, ctx)
        assert fast(sets[ctx["brand"]], trigger, ctx) == expected
        matched += len(expected)
    assert matched > 1000  # the stream does match (about 1.2 rules per event)


def test_a_missing_amount_logs_skipped_runs_in_rule_order():
    rules = [{"id": 1, "trigger": "deposit.created", "conditions": [{"field": "amount_usd", "op": ">", "value": 5}]},
             {"id": 2, "trigger": "deposit.created", "conditions": [{"field": "trade.cmd", "op": "==",
                                                                     "value": "OP_BALANCE_IN"}]},
             {"id": 3, "trigger": "deposit.created", "conditions": [{"field": "amount_usd", "op": "in", "value": [1]}]}]
    ctx = {"amount_usd": None, "trade.cmd": "OP_BALANCE_IN", "_missing": {"amount_usd": "no USD rate for JPY"}}
    ruleset = RuleSet.from_rules(rules)
    assert fast(ruleset, "deposit.created", ctx) == [(1, "no USD rate for JPY"), (2, None), (3, "no USD rate for JPY")]


def test_bools_never_match_numbers_and_nan_matches_no_ordering():
    rules = [{"id": 1, "trigger": "t", "conditions": [{"field": "a", "op": "==", "value": 1}]},
             {"id": 2, "trigger": "t", "conditions": [{"field": "a", "op": ">=", "value": 0}]},
             {"id": 3, "trigger": "t", "conditions": [{"field": "a", "op": "in", "value": [0, 1]}]}]
    ruleset = RuleSet.from_rules(rules)
    assert fast(ruleset, "t", {"a": True}) == []
    assert fast(ruleset, "t", {"a": float("nan")}) == []
    assert fast(ruleset, "t", {"a": 1.0}) == [(1, None), (2, None), (3, None)]
    assert fast(ruleset, "t", {"a": Level.ONE}) == [(1, None), (2, None), (3, None)]


def test_rules_are_returned_in_priority_then_id_order_across_index_and_scan():
    def rule(id: int, priority: int, op: str | None) -> dict[str, Any]:
        conditions = [{"field": "a", "op": op, "value": "x"}] if op else []
        return {"id": id, "trigger": "t", "priority": priority, "conditions": conditions}

    rules = [rule(4, 1, "matches"), rule(3, 1, "=="), rule(2, 2, "starts_with"), rule(1, 3, None)]
    assert fast(RuleSet.from_rules(rules), "t", {"a": "x"}) == [(3, None), (4, None), (2, None), (1, None)]


def test_hand_made_rules_without_an_index_key_are_always_called():
    rule = CompiledRule(id=1, version=1, name="n", brand="b", trigger="t", priority=1,
                        predicate=compile_conditions([{"field": "a", "op": "==", "value": "x"}]))
    ruleset = RuleSet({"t": (rule,)})
    assert ruleset.matching("t", {"a": "x"}) == [(rule, None)]
    assert ruleset.matching("t", {"a": "y"}) == [] and ruleset.matching("other", {}) == []
