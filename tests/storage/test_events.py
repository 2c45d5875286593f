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
