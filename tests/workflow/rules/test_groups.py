"""any/all groups: truth tables of the compiled predicates, index keys, explanations, validation paths."""

from __future__ import annotations

import itertools

import pytest

from brokerflow.workflow.catalog import definitions
from brokerflow.workflow.rules.conditions import compile_conditions, condition_fields, explain, index_key
from brokerflow.workflow.rules.validation import validate_rule

A = {"field": "amount_usd", "op": ">=", "value": 100}
B = {"field": "customer.country", "op": "==", "value": "DE"}
C = {"field": "trade.symbol", "op": "in", "value": ["EURUSD", "GBPUSD"]}


def ctx_of(a: bool, b: bool, c: bool) -> dict:
    return {"amount_usd": 150 if a else 50, "customer.country": "DE" if b else "FR",
            "trade.symbol": "EURUSD" if c else "XAUUSD"}


TABLE = list(itertools.product((False, True), repeat=3))


@pytest.mark.parametrize(("a", "b", "c"), TABLE)
def test_any_holds_when_one_item_holds(a: bool, b: bool, c: bool) -> None:
    assert compile_conditions([{"any": [A, B, C]}])(ctx_of(a, b, c)) is (a or b or c)


@pytest.mark.parametrize(("a", "b", "c"), TABLE)
def test_all_holds_when_every_item_holds(a: bool, b: bool, c: bool) -> None:
    assert compile_conditions([{"all": [A, B, C]}])(ctx_of(a, b, c)) is (a and b and c)


@pytest.mark.parametrize(("a", "b", "c"), TABLE)
def test_top_level_and_of_a_plain_condition_and_an_any_group(a: bool, b: bool, c: bool) -> None:
    assert compile_conditions([A, {"any": [B, C]}])(ctx_of(a, b, c)) is (a and (b or c))


@pytest.mark.parametrize(("a", "b", "c"), TABLE)
def test_nested_groups_follow_boolean_algebra(a: bool, b: bool, c: bool) -> None:
    small = {"field": "amount_usd", "op": "<", "value": 100}
    rule = [{"any": [{"all": [A, B]}, {"all": [{"any": [C]}, {"any": [small]}]}]}]
    assert compile_conditions(rule)(ctx_of(a, b, c)) is ((a and b) or (c and not a))


def test_a_group_five_deep_never_holds_at_run_time() -> None:
    deep: dict = A
    for _ in range(5):
        deep = {"all": [deep]}
    assert compile_conditions([deep])(ctx_of(True, True, True)) is False
    four: dict = A
    for _ in range(4):
        four = {"all": [four]}
    assert compile_conditions([four])(ctx_of(True, True, True)) is True


def test_a_missing_field_inside_a_group_is_false_not_an_error() -> None:
    assert compile_conditions([{"any": [A, B]}])({}) is False


def test_index_key_comes_from_top_level_plain_conditions_only() -> None:
    assert index_key([{"any": [B, C]}]) is None
    key = index_key([{"any": [A]}, B])
    assert key is not None and key.field == "customer.country"


def test_condition_fields_include_fields_inside_groups() -> None:
    assert condition_fields([A, {"any": [B, {"all": [C]}]}]) == ("amount_usd", "customer.country", "trade.symbol")


def test_explain_gives_each_item_of_a_group_its_own_row() -> None:
    rows = explain([A, {"any": [B, C]}], ctx_of(True, False, True))
    assert rows[0]["result"] is True
    group = rows[1]
    assert group["op"] == "any" and group["result"] is True
    assert [item["result"] for item in group["items"]] == [False, True]
    assert group["items"][0]["actual"] == "FR"


def rule_with(conditions: list) -> dict:
    return {"name": "g", "brand": "alpha", "trigger": "deposit.created", "conditions": conditions,
            "actions": [{"type": "notify.manager", "params": {"message": "m"}}]}


def paths(conditions: list) -> list[str]:
    return [p.path for p in validate_rule(rule_with(conditions)).errors]


def test_validation_names_the_nested_item_at_fault() -> None:
    bad = {"field": "customer.country", "op": "==", "value": 1}
    assert paths([A, {"any": [bad]}]) == ["conditions[1].any[0].value"]


def test_validation_refuses_nesting_deeper_than_four() -> None:
    deep: dict = A
    for _ in range(5):
        deep = {"any": [deep]}
    assert paths([deep]) == ["conditions[0].any[0].any[0].any[0].any[0]"]


@pytest.mark.parametrize("group", [{"any": []}, {"all": "x"}, {"any": [A], "field": "brand"}])
def test_validation_refuses_empty_or_malformed_groups(group: dict) -> None:
    assert paths([group])


def test_a_valid_group_rule_validates() -> None:
    assert paths([A, {"any": [B, {"all": [C, A]}]}]) == []


def test_definitions_list_groups_and_their_depth() -> None:
    language = definitions()["language"]
    assert {g["type"] for g in language["groups"]} == {"any", "all"}
    assert language["group_depth_max"] == 4
