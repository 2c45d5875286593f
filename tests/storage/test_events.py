"""The ingress's de-duplication state: processed ids and last seq per source."""

from __future__ import annotations


def test_a_fresh_store_has_no_state(store):
    assert store.events.load_state() == ([], {})


def test_record_then_load_state_gives_ids_newest_last_and_seqs(store):
    store.events.record(["a", "b"], {"bo": 2})
    store.events.record(["c"], {"bo": 3, "crm": 10})
    assert store.events.load_state() == (["a", "b", "c"], {"bo": 3, "crm": 10})


def test_duplicate_ids_are_ignored_within_and_across_batches(store):
    store.events.record(["a", "b", "a"], {})
    store.events.record(["b", "c"], {})
    assert store.events.load_state()[0] == ["a", "b", "c"]


def test_load_state_returns_only_the_newest_ids(store):
    store.events.record([f"e{i}" for i in range(10)], {})
    assert store.events.load_state(limit_ids=3)[0] == ["e7", "e8", "e9"]


def test_prune_keeps_the_newest_ids(store):
    store.events.record([f"e{i}" for i in range(10)], {"bo": 9})
    assert store.events.prune(4) == 6
    assert store.events.load_state() == (["e6", "e7", "e8", "e9"], {"bo": 9})
    assert store.events.prune(4) == 0
    assert store.events.prune(0) == 4
    assert store.events.load_state()[0] == []


def test_record_of_nothing_is_fine(store):
    store.events.record([], {})
    assert store.events.load_state() == ([], {})


def test_load_state_returns_the_most_recently_stored_sources_least_recent_first(store):
    """The ingress's source cap keeps the most recently seen, so the store hands them in that order."""
    for source in ("old", "mid", "new"):
        store.events.record([], {source: 1})
    store.events.record([], {"old": 2})  # stored again: now the most recent
    assert list(store.events.load_state()[1].items()) == [("mid", 1), ("new", 1), ("old", 2)]
    assert list(store.events.load_state(limit_sources=2)[1].items()) == [("new", 1), ("old", 2)]
    assert store.events.load_state(limit_sources=0)[1] == {}


def test_prune_keeps_the_most_recently_stored_sources(store):
    for n in range(6):
        store.events.record([f"e{n}"], {f"s{n}": n})
    store.events.record([], {"s0": 10})
    assert store.events.prune(100, keep_sources=3) == 3
    assert list(store.events.load_state()[1].items()) == [("s4", 4), ("s5", 5), ("s0", 10)]
    assert store.events.load_state()[0] == [f"e{n}" for n in range(6)]  # ids beyond keep stay
    assert store.events.prune(100, keep_sources=3) == 0
    assert store.events.prune(100, keep_sources=0) == 3
    assert store.events.load_state()[1] == {}


def test_prune_keeps_exactly_the_cap_when_sources_were_stored_in_one_batch(store):
    store.events.record([], {f"s{n}": n for n in range(5)})  # one write: one seen_at for all
    store.events.record([], {"late": 1})
    assert store.events.prune(100, keep_sources=3) == 3
    kept = store.events.load_state()[1]
    assert len(kept) == 3 and list(kept)[-1] == "late"
