"""The rule state and event history tables, on every backend: upserts, horizons, caps, pages."""

from __future__ import annotations

T = 1_795_000_000_000


def test_cooldowns_upsert_per_rule_and_key_and_load_newest_first_capped(store) -> None:
    state = store.rule_state
    state.write([(1, "n:501", T), (1, "n:502", T + 1), (1, "n:501", T + 5), (2, "n:501", T + 2)], [])
    assert state.cooldown_of(1, "n:501") == T + 5
    assert state.load_cooldowns([1], 10) == [(1, "n:502", T + 1), (1, "n:501", T + 5)]
    assert state.load_cooldowns([1, 2], 2) == [(2, "n:501", T + 2), (1, "n:501", T + 5)]
    assert state.prune(T + 2, 10) == 1  # n:502 ran before the horizon
    assert state.cooldown_of(1, "n:502") is None


def test_window_entries_are_kept_per_stream_and_dropped_past_their_horizon(store) -> None:
    state = store.rule_state
    rows = [("alpha", "s", "n:1", T + i, float(i)) for i in range(5)] + [("beta", "s", "n:1", T, 9.0)]
    state.write([], rows)
    assert state.load_window("alpha", "s", 3) == [("n:1", T + 2, 2.0), ("n:1", T + 3, 3.0), ("n:1", T + 4, 4.0)]
    state.write([], [("alpha", "s", "n:2", T + 9, None)], [("alpha", "s", T + 3)])
    assert [ts for _, ts, _ in state.load_window("alpha", "s", 100)] == [T + 3, T + 4, T + 9]
    assert state.window_of("alpha", "s", "n:1", T, T + 10) == [(T + 3, 3.0), (T + 4, 4.0)]
    assert state.load_window("beta", "s", 100) == [("n:1", T, 9.0)]
    state.prune(0, 10, [("alpha", "s")], 1)
    assert state.load_window("alpha", "s", 100) == [("n:2", T + 9, None)]


def test_history_pages_by_trigger_and_time_and_prunes_by_age(store) -> None:
    history = store.history
    body = b"\x91\xaatrade.push"
    history.write([(T + i, "deposit.created", body) for i in range(5)] + [(T, "trade.opened", body)])
    first = history.page("deposit.created", T + 1, T + 10, None, 2)
    assert [ts for _, ts, _ in first] == [T + 1, T + 2]
    rest = history.page("deposit.created", T + 1, T + 10, (first[-1][1], first[-1][0]), 10)
    assert [ts for _, ts, _ in rest] == [T + 3, T + 4]
    assert history.prune(T + 3) == 4
    kept = history.page("deposit.created", 0, T + 10, None, 10)
    assert len(kept) == 2 and kept[0][2] == body
