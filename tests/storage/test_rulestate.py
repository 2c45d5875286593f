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
    rows = [("alpha", "s", "n:1", T + i, float(i), f"e{i}") for i in range(5)] + [("beta", "s", "n:1", T, 9.0, "e9")]
    state.write([], rows)
    assert state.load_window("alpha", "s", 3) == [("n:1", T + 2, 2.0, "e2"), ("n:1", T + 3, 3.0, "e3"),
                                                  ("n:1", T + 4, 4.0, "e4")]
    state.write([], [("alpha", "s", "n:2", T + 9, None, None)], [("alpha", "s", T + 3)])
    assert [ts for _, ts, _, _ in state.load_window("alpha", "s", 100)] == [T + 3, T + 4, T + 9]
    assert state.window_of("alpha", "s", "n:1", T, T + 10) == [(T + 3, 3.0), (T + 4, 4.0)]
    assert state.load_window("beta", "s", 100) == [("n:1", T, 9.0, "e9")]
    state.prune(0, 10, [("alpha", "s")], 1)
    assert state.load_window("alpha", "s", 100) == [("n:2", T + 9, None, None)]


def test_a_takeover_reads_the_keys_of_a_stream_and_cooldowns_then_the_rows_of_some(store) -> None:
    state = store.rule_state
    state.write([(1, "n:1", T), (1, "n:2", T + 1), (2, "n:1", T + 2), (3, "n:3", T + 3)],
                [("alpha", "s", f"n:{k}", T + 10 * k + i, float(i), f"mt5:{k}:{i}") for k in range(1, 1200)
                 for i in range(2)]
                + [("alpha", "t", "n:1", T, None, None), ("beta", "s", "n:9", T, None, "x")])
    assert sorted(state.window_keys("alpha", "s")) == sorted(f"n:{k}" for k in range(1, 1200))
    assert state.window_keys("gamma", "s") == []
    keys = [f"n:{k}" for k in range(1, 1200, 2)]  # more than one IN list's worth
    rows = state.load_window_of("alpha", "s", keys, 10_000)
    assert len(rows) == 1200 and {key for key, *_ in rows} == set(keys)
    assert rows == sorted(rows, key=lambda row: row[1])  # oldest first
    assert state.load_window_of("alpha", "s", ["n:5"], 1) == [("n:5", T + 51, 1.0, "mt5:5:1")]  # the newest
    assert state.load_window_of("alpha", "s", [], 10) == []
    assert sorted(state.cooldown_keys([1, 2])) == ["n:1", "n:2"] and state.cooldown_keys([]) == []
    assert state.load_cooldowns_of([1, 2], ["n:1"], 10) == [(1, "n:1", T), (2, "n:1", T + 2)]
    assert state.load_cooldowns_of([1, 2], ["n:1", "n:2"], 1) == [(2, "n:1", T + 2)]
    assert state.load_cooldowns_of([], ["n:1"], 10) == []


def test_history_chunks_page_by_trigger_and_overlap_and_prune_by_their_newest_event(store) -> None:
    history = store.history
    body = b"\x91\xaatrade.push"
    history.write([(T + i, T + i + 10, "deposit.created", 3, body) for i in range(0, 50, 10)]
                  + [(T, T + 100, "trade.opened", 1, body)])
    first = history.page("deposit.created", T + 15, T + 100, None, 2)  # chunks overlapping the range
    assert [ts for _, ts, _ in first] == [T + 10, T + 20]
    rest = history.page("deposit.created", T + 15, T + 100, (first[-1][1], first[-1][0]), 10)
    assert [ts for _, ts, _ in rest] == [T + 30, T + 40]
    assert history.prune(T + 31) == 3  # chunks whose newest event is older go
    kept = history.page("deposit.created", 0, T + 100, None, 10)
    assert [ts for _, ts, _ in kept] == [T + 30, T + 40] and kept[0][2] == body
