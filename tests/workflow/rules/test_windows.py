"""Windowed aggregates: the window's edges on event time, late events, the caps, and validation."""

from __future__ import annotations

import pytest

from brokerflow.workflow.rules.conditions import agg_slot, compile_conditions
from brokerflow.workflow.rules.validation import validate_rule
from brokerflow.workflow.rules.windows import Windows, aggregate, event_identity, key_text, stream_plans

T0 = 1_795_000_000_000
SUM_DAY = {"agg": "sum", "field": "amount_usd", "window_s": 86400, "by": "customer.id", "op": ">=", "value": 10_000}
COUNT_HOUR = {"agg": "count", "window_s": 3600, "by": "customer.id", "op": ">=", "value": 3}
MAX_HOUR = {"agg": "max", "field": "amount_usd", "window_s": 3600, "by": "customer.id", "op": ">", "value": 5000}


def rule(*conditions) -> dict:
    return {"id": 1, "brand": "alpha", "trigger": "deposit.created", "conditions": list(conditions)}


def feed(windows: Windows, plans, customer, amount, ts, ident=None) -> dict:
    ctx = {"customer.id": customer, "amount_usd": amount}
    for plan in plans:
        windows.observe(plan, ctx, ts, ident)
    return ctx


def setup(*conditions):
    plans = stream_plans("deposit.created", [rule(*conditions)])
    windows = Windows()
    windows.plan(plans)
    return windows, plans


@pytest.mark.parametrize(("agg", "expected"), [("count", 3), ("sum", 6.5), ("max", 4)])
def test_aggregate_takes_the_window_this_event_included(agg, expected) -> None:
    entries = [(T0 - 2000, 9), (T0 - 1000, 1.5), (T0 - 500, 1), (T0, 4)]
    assert aggregate(entries, agg, T0, 1500) == expected


def test_the_window_edge_an_event_exactly_window_s_older_is_out() -> None:
    windows, plans = setup(SUM_DAY)
    feed(windows, plans, 501, 6000, T0)
    inside = feed(windows, plans, 501, 4000, T0 + 86_400_000 - 1)
    assert inside[agg_slot(SUM_DAY)] == 10_000
    edge = feed(windows, plans, 502, 6000, T0)
    edge = feed(windows, plans, 502, 4000, T0 + 86_400_000)
    assert edge[agg_slot(SUM_DAY)] == 4000
    assert compile_conditions([SUM_DAY])(inside) is True and compile_conditions([SUM_DAY])(edge) is False


def test_a_late_event_inside_the_window_counts_for_itself_and_for_later_ones() -> None:
    windows, plans = setup(COUNT_HOUR)
    feed(windows, plans, 501, 1, T0)
    late = feed(windows, plans, 501, 1, T0 - 60_000)  # arrives after T0 but happened a minute before
    assert late[agg_slot(COUNT_HOUR)] == 1  # its own window ends at its own ts
    later = feed(windows, plans, 501, 1, T0 + 1000)
    assert later[agg_slot(COUNT_HOUR)] == 3


def test_streams_are_per_by_value_and_shared_by_aggregates_of_one_field() -> None:
    windows, plans = setup(SUM_DAY, MAX_HOUR, COUNT_HOUR)
    assert len(plans) == 2  # (customer.id, amount_usd) and (customer.id, none)
    feed(windows, plans, 501, 7000, T0)
    ctx = feed(windows, plans, 502, 100, T0 + 1)
    assert (ctx[agg_slot(SUM_DAY)], ctx[agg_slot(MAX_HOUR)], ctx[agg_slot(COUNT_HOUR)]) == (100, 100, 1)


def test_an_event_without_the_by_value_adds_nothing_and_never_holds() -> None:
    windows, plans = setup(COUNT_HOUR)
    ctx = feed(windows, plans, None, 1, T0)
    assert agg_slot(COUNT_HOUR) not in ctx and compile_conditions([COUNT_HOUR])(ctx) is False
    assert windows.entry_count() == 0


def test_memory_is_capped_per_key_and_per_stream_with_a_warning(caplog) -> None:
    plans = stream_plans("deposit.created", [rule(COUNT_HOUR)])
    windows = Windows(per_key=5, per_stream=12)
    windows.plan(plans)
    for i in range(8):
        ctx = feed(windows, plans, 501, 1, T0 + i)
    assert ctx[agg_slot(COUNT_HOUR)] == 5
    assert "by value cap 5 reached" in caplog.text
    for customer in range(600, 610):
        feed(windows, plans, customer, 1, T0)
    assert windows.entry_count() <= 12
    assert "stream cap 12 reached" in caplog.text


def test_stored_rows_load_back_into_a_fresh_window() -> None:
    windows, plans = setup(SUM_DAY)
    windows.load(plans[0].name, [(key_text(501), T0, 9000.0)])
    assert feed(windows, plans, 501, 1000, T0 + 5)[agg_slot(SUM_DAY)] == 10_000


def test_an_event_seen_again_counts_once_and_stores_nothing_new() -> None:
    """A replay (same identity, same ts and value) after its first evaluation: the window holds it already."""
    windows, plans = setup(COUNT_HOUR, SUM_DAY)
    feed(windows, plans, 501, 6000, T0, "mt5:1")
    first = feed(windows, plans, 501, 3000, T0 + 10, "mt5:2")
    ctx = {"customer.id": 501, "amount_usd": 3000}
    rows = [windows.observe(plan, ctx, T0 + 10, "mt5:2") for plan in plans]
    assert rows == [None] * len(plans)  # nothing for the writer to store again
    assert ctx[agg_slot(COUNT_HOUR)] == first[agg_slot(COUNT_HOUR)] == 2
    assert ctx[agg_slot(SUM_DAY)] == first[agg_slot(SUM_DAY)] == 9000
    assert feed(windows, plans, 501, 1000, T0 + 20, "mt5:3")[agg_slot(SUM_DAY)] == 10_000
    assert windows.entry_count() == 3 * len(plans)


def test_different_events_with_the_same_ts_and_value_all_count() -> None:
    windows, plans = setup(COUNT_HOUR)
    for ident in ("a", "b", None, None, "mt5:7"):
        ctx = feed(windows, plans, 501, 100, T0, ident)
    assert ctx[agg_slot(COUNT_HOUR)] == 5
    assert feed(windows, plans, 502, 100, T0, "a")[agg_slot(COUNT_HOUR)] == 1  # another key's window


def test_an_identity_that_left_the_window_is_forgotten_with_it() -> None:
    windows, plans = setup(COUNT_HOUR)
    feed(windows, plans, 501, 1, T0, "old")
    feed(windows, plans, 501, 1, T0 + 3_600_000 + 5, "new")
    feed(windows, plans, 501, 1, T0 + 3_600_000 + 6, "newer")  # "old" is past the retention: cut
    assert windows._streams[plans[0].name].seen[key_text(501)] == {"new", "newer"}
    assert feed(windows, plans, 501, 1, T0, "old")[agg_slot(COUNT_HOUR)] == 1  # outside every later window


def test_the_caps_forget_the_identities_of_what_they_drop(caplog) -> None:
    plans = stream_plans("deposit.created", [rule(COUNT_HOUR)])
    windows = Windows(per_key=3, per_stream=4)
    windows.plan(plans)
    for i in range(5):
        feed(windows, plans, 501, 1, T0 + i, f"e{i}")
    stream = windows._streams[plans[0].name]
    assert stream.seen[key_text(501)] == {"e2", "e3", "e4"}
    feed(windows, plans, 502, 1, T0, "f0")
    feed(windows, plans, 503, 1, T0, "g0")  # 501, least recently seen, goes whole
    assert set(stream.seen) == set(stream.keys) == {key_text(502), key_text(503)}


def test_a_window_loaded_from_storage_recognises_a_replayed_event() -> None:
    """A restart or takeover: storage kept the entries with their events' identities."""
    windows, plans = setup(COUNT_HOUR)
    windows.load(plans[0].name, [(key_text(501), T0, None, "mt5:1"), (key_text(501), T0 + 1, None, "mt5:2")])
    assert feed(windows, plans, 501, 1, T0 + 1, "mt5:2")[agg_slot(COUNT_HOUR)] == 2  # replayed: counted once
    assert feed(windows, plans, 501, 1, T0 + 2, "mt5:3")[agg_slot(COUNT_HOUR)] == 3
    gained = Windows()
    gained.plan(plans)
    gained.replace(plans[0].name, lambda key: True, [(key_text(501), T0, None, "mt5:1")])
    assert feed(gained, plans, 501, 1, T0, "mt5:1")[agg_slot(COUNT_HOUR)] == 1


def test_rows_stored_without_identity_still_load_and_count() -> None:
    windows, plans = setup(COUNT_HOUR, SUM_DAY)
    for plan in plans:
        windows.load(plan.name, [(key_text(501), T0, 500.0, None), (key_text(501), T0 + 1, 500.0, None)])
    ctx = feed(windows, plans, 501, 500, T0 + 2, "mt5:3")
    assert ctx[agg_slot(COUNT_HOUR)] == 3 and ctx[agg_slot(SUM_DAY)] == 1500


def test_an_event_key_made_up_at_receipt_has_no_identity() -> None:
    assert event_identity("mt5:12") == "mt5:12" and event_identity("pub-id-1") == "pub-id-1"
    assert event_identity("local:1795000000000:7f3a") is None  # the same text may name a later event


def errors(*conditions, trigger="deposit.created") -> list[tuple[str, str]]:
    body = {"name": "a", "brand": "alpha", "trigger": trigger, "conditions": list(conditions),
            "actions": [{"type": "notify.manager", "params": {"message": "m"}}]}
    return [(p.path, p.message) for p in validate_rule(body).errors]


def test_valid_aggregates_validate_inside_groups_too() -> None:
    assert errors(SUM_DAY, {"any": [COUNT_HOUR, MAX_HOUR]}) == []


@pytest.mark.parametrize(("change", "path", "says"), [
    ({"window_s": 10 * 365 * 86400}, "conditions[0].window_s", "31 days"),
    ({"window_s": 0}, "conditions[0].window_s", "from 1"),
    ({"by": "customer.nope"}, "conditions[0].by", "catalog field"),
    ({"by": "kyc.step_code"}, "conditions[0].by", "not provided by trigger"),
    ({"field": "trade.symbol"}, "conditions[0].field", "needs a number field"),
    ({"field": None}, "conditions[0].field", "catalog field"),
    ({"agg": "avg"}, "conditions[0].agg", "count, sum, max"),
    ({"op": "contains"}, "conditions[0].op", "compares with one of"),
    ({"value": "lots"}, "conditions[0].value", "must be a number"),
    ({"every": 1}, "conditions[0].every", "unknown key"),
])
def test_bad_aggregates_are_refused_with_their_path(change, path, says) -> None:
    found = errors({**SUM_DAY, **change})
    assert any(p == path and says in m for p, m in found), found


def test_aggregates_are_for_event_triggers_only() -> None:
    found = errors({**COUNT_HOUR, "by": "brand"}, trigger="manual")
    assert any(p == "conditions[0]" and "event triggers only" in m for p, m in found), found


def test_a_nested_bad_aggregate_names_its_path() -> None:
    found = errors({"all": [{**COUNT_HOUR, "window_s": 10 * 365 * 86400}]})
    assert [p for p, _ in found] == ["conditions[0].all[0].window_s"]
