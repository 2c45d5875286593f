"""``matches`` patterns: plain ones run on ``re``, ones that could backtrack for ever on RE2,
and the few that need backtracking *and* could take for ever are refused when saved and never
run when stored."""

from __future__ import annotations

import logging
import re
import time

import pytest

from brokerflow.workflow.rules.conditions import compile_conditions
from brokerflow.workflow.rules.regex_guard import PATTERN_MAX, SUBJECT_MAX, compile_search, regex_engine, regex_problem
from brokerflow.workflow.rules.ruleset import RuleSet
from brokerflow.workflow.rules.validation import validate_rule

PLAIN = [r"^EUR", r"USD$", r"\d{3}", r"^\w+@\w+\.com$", r"^[A-Z]+\d+$", r"\d+(?:,\d{3})*", r"(foo|bar)+",
         r"^[a-z]+[A-Z]+$", r".*USD", r"(?:ab)+c", r"^(EUR|USD|GBP)[A-Z]{3}$", r"^\+?\d{6,15}$",
         r"^[^@]+@[^@]+$", r"(\d{3}-)+x", r"(?i)^vip", r"a{0,16}a{0,16}b", r"^(?!test)"]
RISKY = {
    r"(a+)+$": "quantifier", r"(a*)*b": "quantifier", r"(a?){3}": "quantifier", r"(?:\d+|x)+": "quantifier",
    r"(a|ab)+c": "alternatives", r"(a|a)*b": "alternatives",
    r".*a.*b": "unbounded", r"a*a*b": "unbounded", r"\d+\d*x": "unbounded", r"(.*)a(.*)b": "unbounded",
    r"\w+\d+x": "unbounded", r"(?i)[a-z]+[A-Z]+x": "unbounded", r"[a-z]+(?i:[A-Z])+!": "unbounded",
    r"(?:x.*)?.*b": "unbounded", r"a{0,100}a{0,100}b": "unbounded",
    r".*@.*\.com": "unbounded", r"^[^@]+@[^@]+\.[a-z]{2,}$": "unbounded", r"^.*test.*$": "unbounded",
}
REFUSED = {
    r"(?=.*a).*b": "lookaround", r"(a)\1": "backreferences", r"(a)(?(1)a|b)": "backreferences",
    r"(a+)+\1": "backreferences", "a" * (PATTERN_MAX + 1): "at most", r"(": "not a valid",
}
HOSTILE = ["a" * SUBJECT_MAX, "aA1" * (SUBJECT_MAX // 3), "1,000" * (SUBJECT_MAX // 5), "ab" * 2048,
           "a" * 40 + "b", "x@" * 2048]


@pytest.mark.parametrize("pattern", PLAIN)
def test_plain_patterns_run_on_re(pattern):
    assert regex_problem(pattern) is None and regex_engine(pattern) == "re"


@pytest.mark.parametrize("pattern", RISKY)
def test_patterns_that_could_backtrack_for_ever_run_on_re2(pattern):
    assert regex_problem(pattern) is None and regex_engine(pattern) == "re2"


@pytest.mark.parametrize(("pattern", "word"), REFUSED.items())
def test_patterns_no_engine_runs_in_bounded_time_are_refused_with_a_reason(pattern, word):
    problem = regex_problem(pattern)
    assert problem is not None and word in problem
    assert compile_search(pattern) is None and regex_engine(pattern) is None


@pytest.mark.parametrize("pattern", PLAIN + list(RISKY))
def test_both_engines_answer_as_re_does_on_ordinary_values(pattern):
    search = compile_search(pattern)
    for value in ["EURUSD", "aaab", "x1,000", "vip client", "ab@cd.com", "AAbbC!", "abcUSD", "", "123-x",
                  "test me", "aaaa", "foofoo"]:
        assert search(value) is (re.search(pattern, value) is not None), value


def test_every_accepted_pattern_stays_fast_on_hostile_subjects():
    # A time bound is the point of the two engines; 5 s for all of them is far above the
    # few ms they take, and far below the minutes `re` would take on the risky ones here.
    started = time.perf_counter()
    for pattern in PLAIN + list(RISKY):
        search = compile_search(pattern)
        for subject in HOSTILE:
            search(subject)
    assert time.perf_counter() - started < 5.0


def holds(pattern, actual):
    return compile_conditions([{"field": "f", "op": "matches", "value": pattern}])({"f": actual})


def test_a_risky_pattern_matches_and_a_refused_one_never_holds():
    assert holds(r"(a+)+$", "aaaa") is True
    assert holds(r"(a+)+$", "a" * 40 + "b") is False  # on RE2 at once; `re` would take minutes
    assert holds(r"(a)\1", "aa") is False  # refused: never run


@pytest.mark.parametrize("pattern", [r"x", r"(a+)+x"])
def test_only_the_first_subject_max_characters_are_searched(pattern):
    assert holds(pattern, "a" * (SUBJECT_MAX - 1) + "x") is True
    assert holds(pattern, "a" * SUBJECT_MAX + "x") is False


@pytest.mark.parametrize("pattern", [r"a$", r"(a+)+$"])
def test_end_anchor_holds_where_the_search_stops(pattern):
    assert holds(pattern, "a" * SUBJECT_MAX + "b") is True


def test_validation_refuses_an_unbounded_pattern_at_its_path_and_accepts_a_risky_one():
    def errors(pattern):
        rule = {"name": "r", "brand": "acme", "trigger": "trade.opened",
                "conditions": [{"field": "trade.symbol", "op": "matches", "value": pattern}]}
        return [(p.path, p.message) for p in validate_rule(rule).errors]

    refused = errors(r"(a+)+\1")
    assert len(refused) == 1 and refused[0][0] == "conditions[0].value"
    assert "bounded time" in refused[0][1] and "(a+)+\\1" not in refused[0][1]
    assert errors(r"(a+)+$") == []


def test_a_stored_rule_with_a_refused_pattern_loads_is_logged_and_never_fires(caplog):
    bad = {"id": 7, "trigger": "trade.opened", "conditions": [
        {"field": "trade.symbol", "op": "matches", "value": r"(a+)+\1"}]}
    good = {"id": 8, "trigger": "trade.opened", "conditions": [
        {"field": "trade.symbol", "op": "matches", "value": "^a+$"}]}
    risky = {"id": 9, "trigger": "trade.opened", "conditions": [
        {"field": "trade.symbol", "op": "matches", "value": "(a+)+$"}]}
    with caplog.at_level(logging.INFO, logger="brokerflow.rules"):
        ruleset = RuleSet.from_rules([bad, good, risky])
    assert len(ruleset) == 3
    assert [r.id for r, _ in ruleset.matching("trade.opened", {"trade.symbol": "aaaa"})] == [8, 9]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "rule 7: conditions[0] never holds" in warned[0]
    assert r"(a+)+\1" not in warned[0]
    told = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(told) == 1 and told[0].startswith("rule 9: conditions[0] runs on RE2")


def test_where_re2_differs_from_re_as_documented():
    assert holds(r"(a+)+b$", "aab\n") is False and re.search(r"(a+)+b$", "aab\n")  # $ at the very end only
    assert holds(r"^(\d+)+$", "\u0663\u0664") is False and re.search(r"^(\d+)+$", "\u0663\u0664")  # ASCII \d
