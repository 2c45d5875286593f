"""Condition compilation: every operator against every kind of value, missing and mismatched."""

from __future__ import annotations

import pytest

from brokerflow.workflow.rules.conditions import compile_conditions, compile_test, explain, missing_reason

MISSING = object()


def holds(op, value, actual):
    ctx = {} if actual is MISSING else {"f": actual}
    return compile_conditions([{"field": "f", "op": op, "value": value}])(ctx)


@pytest.mark.parametrize(
    ("op", "value", "actual", "expected"),
    [
        # == / != : numbers compare naturally, kinds must agree, missing is false
        ("==", 1, 1, True),
        ("==", 1, 1.0, True),
        ("==", 1.5, 1.5, True),
        ("==", 1, 2, False),
        ("==", "EURUSD", "EURUSD", True),
        ("==", "EURUSD", "eurusd", False),
        ("==", 1, "1", False),
        ("==", "1", 1, False),
        ("==", True, True, True),
        ("==", True, 1, False),
        ("==", 1, True, False),
        ("==", False, False, True),
        ("==", 1, MISSING, False),
        ("==", 1, None, False),
        ("==", None, None, False),
        ("!=", 1, 2, True),
        ("!=", 1, 1.0, False),
        ("!=", "a", "b", True),
        ("!=", "a", "a", False),
        ("!=", "a", 1, False),
        ("!=", True, False, True),
        ("!=", 1, MISSING, False),
        ("!=", "a", None, False),
        # ordering: numbers with numbers, strings with strings
        (">", 10, 11, True),
        (">", 10, 10, False),
        (">", 10, 10.5, True),
        (">", 10.5, 10, False),
        (">=", 10, 10, True),
        (">=", 10, 10.0, True),
        (">=", 10, 9.99, False),
        ("<", 1, 0, True),
        ("<", 1, 1, False),
        ("<=", 1, 1, True),
        ("<=", 1, 2, False),
        (">", "b", "c", True),
        ("<", "b", "a", True),
        (">", 10, "11", False),
        ("<", "b", 1, False),
        (">", 0, True, False),
        (">=", True, True, False),
        (">", 10, MISSING, False),
        ("<", 10, None, False),
        ("<=", None, 1, False),
        # in / not_in
        ("in", ["DE", "FR"], "DE", True),
        ("in", ["DE", "FR"], "IT", False),
        ("in", [1, 2], 1.0, True),
        ("in", [1.0, 2], 1, True),
        ("in", [1, 2], "1", False),
        ("in", [1, 0], True, False),
        ("in", [True], True, True),
        ("in", [], "DE", False),
        ("in", ["DE"], MISSING, False),
        ("in", ["DE"], None, False),
        ("in", "DE", "DE", True),
        ("in", [[1, 2], "x"], [1, 2], True),
        ("in", [{"a": 1}], {"a": 1}, True),
        ("not_in", ["DE", "FR"], "IT", True),
        ("not_in", ["DE", "FR"], "DE", False),
        ("not_in", [1, 2], 2.0, False),
        ("not_in", [1, 2], 3, True),
        ("not_in", [1, 2], "3", False),
        ("not_in", [], "x", True),
        ("not_in", ["DE"], MISSING, False),
        ("not_in", ["DE"], None, False),
        ("not_in", ["DE", 5], 6, True),
        # contains: substring for strings, membership for lists
        ("contains", "VIP", "is VIP client", True),
        ("contains", "VIP", "regular", False),
        ("contains", "vip", "VIP", False),
        ("contains", "a", ["a", "b"], True),
        ("contains", "c", ["a", "b"], False),
        ("contains", 1, [1.0, 2], True),
        ("contains", 1, ["1"], False),
        ("contains", 1, "1 lot", False),
        ("contains", "1", 100, False),
        ("contains", "x", MISSING, False),
        ("contains", "x", None, False),
        ("contains", None, "x", False),
        # starts_with / ends_with
        ("starts_with", "real", "real\\vip", True),
        ("starts_with", "demo", "real\\vip", False),
        ("starts_with", ["demo", "real"], "real\\vip", True),
        ("starts_with", "1", 123, False),
        ("starts_with", 1, "123", False),
        ("starts_with", "x", MISSING, False),
        ("ends_with", "@example.com", "a@example.com", True),
        ("ends_with", "@example.com", "a@example.org", False),
        ("ends_with", ".org", None, False),
        ("ends_with", "3", 123, False),
        # matches: re.search, precompiled
        ("matches", r"^EUR", "EURUSD", True),
        ("matches", r"USD$", "EURUSD", True),
        ("matches", r"JPY", "EURUSD", False),
        ("matches", r"\d{3}", "ab123", True),
        ("matches", r"1", 123, False),
        ("matches", r"x", MISSING, False),
        ("matches", r"(", "(", False),
        ("matches", 5, "5", False),
        # unknown operators never hold
        ("~=", 1, 1, False),
        (None, 1, 1, False),
    ],
)
def test_operator_table(op, value, actual, expected):
    assert holds(op, value, actual) is expected


def test_all_conditions_must_hold():
    predicate = compile_conditions([
        {"field": "amount_usd", "op": ">=", "value": 1},
        {"field": "customer.kyc_current_level", "op": "<", "value": 1},
    ])
    assert predicate({"amount_usd": 5, "customer.kyc_current_level": 0}) is True
    assert predicate({"amount_usd": 5, "customer.kyc_current_level": 1}) is False
    assert predicate({"amount_usd": 0.5, "customer.kyc_current_level": 0}) is False
    assert predicate({"customer.kyc_current_level": 0}) is False


def test_no_conditions_always_hold():
    assert compile_conditions([])({}) is True
    assert compile_conditions(None)({"x": 1}) is True


def test_malformed_conditions_compile_to_false_instead_of_raising():
    assert compile_conditions(["nonsense"])({"f": 1}) is False
    assert compile_conditions([{"op": "==", "value": 1}])({"f": 1}) is False
    assert compile_conditions([{"field": "f", "op": ">", "value": [1]}])({"f": 2}) is False


def test_evaluation_never_raises_on_hostile_values():
    class Angry:
        def __eq__(self, other):
            raise RuntimeError("no")

        __hash__ = object.__hash__

    predicate = compile_conditions([{"field": "f", "op": "contains", "value": 1}])
    assert predicate({"f": [Angry()]}) is False
    two = compile_conditions([{"field": "g", "op": "==", "value": 1},
                              {"field": "f", "op": "contains", "value": 1}])
    assert two({"g": 1, "f": [Angry()]}) is False


def test_compile_test_is_a_reusable_single_value_test():
    test = compile_test("in", ["OP_BUY", "OP_SELL"])
    assert test("OP_BUY") and not test("OP_BALANCE_IN") and not test(None)


def test_explain_reports_each_condition_with_actual_value():
    conditions = [
        {"field": "trade.symbol", "op": "==", "value": "EURUSD"},
        {"field": "amount_usd", "op": ">", "value": 100},
    ]
    rows = explain(conditions, {"trade.symbol": "EURUSD"})
    assert rows == [
        {"field": "trade.symbol", "op": "==", "value": "EURUSD", "actual": "EURUSD", "result": True},
        {"field": "amount_usd", "op": ">", "value": 100, "actual": None, "result": False},
    ]


def test_missing_reason_names_why_a_field_is_unknown():
    conditions = [{"field": "amount_usd", "op": ">=", "value": 1}]
    ctx = {"_missing": {"amount_usd": "amount_usd unknown: no USD rate for EUR"}}
    assert missing_reason(conditions, ctx) == "amount_usd unknown: no USD rate for EUR"


def test_missing_reason_is_none_when_the_field_is_present_or_unexplained():
    conditions = [{"field": "amount_usd", "op": ">=", "value": 1}]
    assert missing_reason(conditions, {"amount_usd": 5, "_missing": {"amount_usd": "x"}}) is None
    assert missing_reason(conditions, {"_missing": {}}) is None
    assert missing_reason(conditions, {}) is None
    assert missing_reason([], {"_missing": {"amount_usd": "x"}}) is None


@pytest.mark.parametrize("failing", [0, 1, 2])
def test_three_or_more_conditions_all_must_hold(failing):
    conditions = [{"field": f"f{i}", "op": "==", "value": i} for i in range(3)]
    ctx = {f"f{i}": i for i in range(3)}
    assert compile_conditions(conditions)(ctx) is True
    ctx[f"f{failing}"] = -1
    assert compile_conditions(conditions)(ctx) is False
