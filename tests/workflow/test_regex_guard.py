"""The ``matches`` guard: slow patterns are refused when saved and never run when stored."""

from __future__ import annotations

import logging
import re
import time

import pytest

from workflow.conditions import compile_conditions
from workflow.regex_guard import PATTERN_MAX, SUBJECT_MAX, regex_problem
from workflow.ruleset import RuleSet
from workflow.validation import validate_rule

ACCEPTED = [r"^EUR", r"USD$", r"\d{3}", r"^\w+@\w+\.com$", r"^[A-Z]+\d+$", r"\d+(?:,\d{3})*", r"(foo|bar)+",
            r"^[a-z]+[A-Z]+$", r".*USD", r"(?:ab)+c", r"^(EUR|USD|GBP)[A-Z]{3}$", r"^\+?\d{6,15}$",
            r"^[^@]+@[^@]+$", r"(\d{3}-)+x", r"(?i)^vip", r"a{0,16}a{0,16}b"]
REFUSED = {
    r"(a+)+$": "quantifier", r"(a*)*b": "quantifier", r"(a?){3}": "quantifier", r"(?:\d+|x)+": "quantifier",
    r"(a|ab)+c": "alternatives", r"(a|a)*b": "alternatives",
    r".*a.*b": "unbounded", r"a*a*b": "unbounded", r"\d+\d*x": "unbounded", r"(.*)a(.*)b": "unbounded",
    r"\w+\d+x": "unbounded", r"(?i)[a-z]+[A-Z]+x": "unbounded", r"[a-z]+(?i:[A-Z])+!": "unbounded",
    r"(?:x.*)?.*b": "unbounded", r"a{0,100}a{0,100}b": "unbounded", r"(?=.*a).*b": "unbounded",
    r"(a)\1": "backreferences", r"(a)(?(1)a|b)": "backreferences",
    "a" * (PATTERN_MAX + 1): "at most", r"(": "not a valid",
}


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_ordinary_patterns_are_accepted(pattern):
    assert regex_problem(pattern) is None


@pytest.mark.parametrize(("pattern", "word"), REFUSED.items())
def test_slow_patterns_are_refused_with_a_reason(pattern, word):
    problem = regex_problem(pattern)
    assert problem is not None and word in problem


def test_accepted_patterns_stay_fast_on_hostile_subjects():
    # A time bound is the point of the guard; 2 s for all of them is far above the few ms they
    # take, and far below the minutes a refused pattern takes on these subjects.
    subjects = ["a" * SUBJECT_MAX, "aA1" * (SUBJECT_MAX // 3), "1,000" * (SUBJECT_MAX // 5), "ab" * 2048]
    started = time.perf_counter()
    for pattern in ACCEPTED:
        search = re.compile(pattern).search
        for subject in subjects:
            search(subject, 0, SUBJECT_MAX)
    assert time.perf_counter() - started < 2.0


def holds(pattern, actual):
    return compile_conditions([{"field": "f", "op": "matches", "value": pattern}])({"f": actual})


def test_a_refused_pattern_never_holds_even_where_it_would_match():
    assert holds(r"(a+)+$", "aaaa") is False
    assert holds(r"(a+)+$", "a" * 40 + "b") is False  # never run: it would take minutes
    assert holds(r"a+$", "aaaa") is True


def test_only_the_first_subject_max_characters_are_searched():
    assert holds("x", "a" * (SUBJECT_MAX - 1) + "x") is True
    assert holds("x", "a" * SUBJECT_MAX + "x") is False
    assert holds("a$", "a" * SUBJECT_MAX + "b") is True  # $ holds where the search stops


def test_validation_refuses_a_nested_quantifier_at_its_path():
    rule = {"name": "r", "brand": "acme", "trigger": "trade.opened",
            "conditions": [{"field": "trade.symbol", "op": "matches", "value": "(a+)+$"}]}
    errors = [(p.path, p.message) for p in validate_rule(rule).errors]
    assert len(errors) == 1 and errors[0][0] == "conditions[0].value"
    assert "quantifier" in errors[0][1]


def test_a_stored_rule_with_a_refused_pattern_loads_is_logged_and_never_fires(caplog):
    bad = {"id": 7, "trigger": "trade.opened", "conditions": [
        {"field": "trade.symbol", "op": "matches", "value": "(a+)+$"}]}
    good = {"id": 8, "trigger": "trade.opened", "conditions": [
        {"field": "trade.symbol", "op": "matches", "value": "^a+$"}]}
    with caplog.at_level(logging.WARNING, logger="brokerflow.rules"):
        ruleset = RuleSet.from_rules([bad, good])
    assert len(ruleset) == 2
    assert [r.id for r, _ in ruleset.matching("trade.opened", {"trade.symbol": "aaaa"})] == [8]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "rule 7: conditions[0] never holds" in warned[0]
    assert "(a+)+$" not in warned[0]
