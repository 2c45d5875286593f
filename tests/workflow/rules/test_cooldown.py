"""Cooldowns: the pure decision, the LRU-bounded book on a test clock, and validation."""

from __future__ import annotations

import pytest

from brokerflow.workflow.rules.cooldown import (
    COOLDOWN_S_MAX,
    Cooldowns,
    CooldownSpec,
    cooldown_allows,
    cooldown_of,
)
from brokerflow.workflow.rules.validation import validate_rule

T0 = 1_795_000_000_000
HOUR = CooldownSpec("customer.id", 3_600_000)


@pytest.mark.parametrize(("last", "now", "allowed"), [
    (None, T0, True),  # never ran
    (T0, T0, False),  # the same instant
    (T0, T0 + 3_599_999, False),  # just inside the hour
    (T0, T0 + 3_600_000, True),  # exactly the hour later: the cooldown is over
    (T0 + 10, T0, True),  # a clock that went back before the last run does not lock the rule out
])
def test_cooldown_allows_a_run_only_outside_the_window(last, now, allowed) -> None:
    assert cooldown_allows(last, now, 3_600_000) is allowed


def test_a_second_match_within_the_window_is_suppressed_and_runs_again_after_it() -> None:
    book = Cooldowns()
    ctx = {"customer.id": 501}
    assert book.decide(1, HOUR, ctx, T0) == (1, "n:501", T0)
    assert book.decide(1, HOUR, ctx, T0 + 60_000) is None
    assert book.decide(1, HOUR, ctx, T0 + 3_599_999) is None  # suppressed matches do not restart it
    assert book.decide(1, HOUR, ctx, T0 + 3_600_000) == (1, "n:501", T0 + 3_600_000)


def test_cooldowns_are_per_rule_and_per_key_value() -> None:
    book = Cooldowns()
    assert book.decide(1, HOUR, {"customer.id": 501}, T0)
    assert book.decide(1, HOUR, {"customer.id": 502}, T0)
    assert book.decide(2, HOUR, {"customer.id": 501}, T0)
    assert book.decide(1, HOUR, {"customer.id": "501"}, T0)  # the string is another value
    assert book.decide(1, HOUR, {"customer.id": 501}, T0 + 1) is None


def test_a_missing_key_value_is_one_key_of_its_own() -> None:
    book = Cooldowns()
    assert book.decide(1, HOUR, {}, T0)
    assert book.decide(1, HOUR, {"customer.id": None}, T0 + 1) is None


def test_loaded_rows_keep_a_cooldown_across_a_restart() -> None:
    book = Cooldowns()
    row = book.decide(1, HOUR, {"customer.id": 501}, T0)
    again = Cooldowns()
    again.load([row])
    assert again.decide(1, HOUR, {"customer.id": 501}, T0 + 1000) is None


def test_the_book_is_bounded_and_forgets_the_key_that_ran_longest_ago(caplog) -> None:
    book = Cooldowns(cap=3)
    for customer in range(5):
        book.decide(1, HOUR, {"customer.id": customer}, T0 + customer)
    assert len(book) == 3
    assert book.last(1, "n:0") is None and book.last(1, "n:4") == T0 + 4
    assert "cap of 3 keys reached" in caplog.text


def test_cooldown_of_reads_the_rule_field() -> None:
    assert cooldown_of({"cooldown": {"key": "customer.id", "seconds": 60}}) == CooldownSpec("customer.id", 60_000)
    assert cooldown_of({"cooldown": None}) is None
    assert cooldown_of({"cooldown": {"key": "customer.id", "seconds": COOLDOWN_S_MAX + 1}}) is None


def errors(cooldown, trigger="deposit.created") -> list[tuple[str, str]]:
    rule = {"name": "c", "brand": "alpha", "trigger": trigger, "cooldown": cooldown,
            "actions": [{"type": "notify.manager", "params": {"message": "m"}}]}
    return [(p.path, p.message) for p in validate_rule(rule).errors]


def test_a_valid_cooldown_validates() -> None:
    assert errors({"key": "customer.id", "seconds": 3600}) == []


@pytest.mark.parametrize(("cooldown", "trigger", "path", "says"), [
    ("hourly", "deposit.created", "cooldown", "must be a map"),
    ({"key": "customer.nope", "seconds": 60}, "deposit.created", "cooldown.key", "catalog field"),
    ({"key": "trade.login", "seconds": 60}, "customer.created", "cooldown.key", "not provided by trigger"),
    ({"key": "customer.id", "seconds": 0}, "deposit.created", "cooldown.seconds", "from 1 to"),
    ({"key": "customer.id", "seconds": 10 * 365 * 86400}, "deposit.created", "cooldown.seconds", "31 days"),
    ({"key": "customer.id", "seconds": 60, "per": "x"}, "deposit.created", "cooldown.per", "unknown key"),
    ({"key": "brand", "seconds": 60}, "manual", "cooldown", "event triggers only"),
])
def test_bad_cooldowns_are_refused_with_their_path(cooldown, trigger, path, says) -> None:
    found = errors(cooldown, trigger)
    assert any(p == path and says in m for p, m in found), found
