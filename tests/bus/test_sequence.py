from __future__ import annotations

from brokerflow.bus.sequence import Deduplicator
from brokerflow.workflow.events import Event


def ev(id: str | None = None, source: str | None = None, seq: int | None = None) -> Event:
    return Event(topic="rate.push", event=None, record={"currency": "EUR", "usd": 1.1},
                 source=source, seq=seq, id=id)


def test_an_id_seen_before_is_a_duplicate():
    d = Deduplicator()
    assert d.check(ev(id="a")) == "new"
    assert d.check(ev(id="a")) == "duplicate"
    assert d.check(ev(id="b")) == "new"


def test_a_seq_at_or_below_the_last_of_its_source_is_a_duplicate():
    d = Deduplicator()
    assert d.check(ev(source="s", seq=1)) == "new"
    assert d.check(ev(source="s", seq=2)) == "new"
    assert d.check(ev(source="s", seq=2)) == "duplicate"
    assert d.check(ev(source="s", seq=1)) == "duplicate"
    assert d.check(ev(source="other", seq=1)) == "new"


def test_a_new_id_with_an_old_seq_is_still_a_duplicate():
    d = Deduplicator()
    d.check(ev(id="a", source="s", seq=5))
    assert d.check(ev(id="b", source="s", seq=5)) == "duplicate"
    assert "b" not in d


def test_a_jump_in_seq_is_a_gap_with_the_missing_range_and_the_event_is_kept():
    d = Deduplicator()
    assert d.check(ev(source="s", seq=1)) == "new"
    assert d.check(ev(source="s", seq=5)) == ("gap", 2, 4)
    assert d.last_seq("s") == 5
    assert d.check(ev(source="s", seq=6)) == "new"


def test_the_first_event_of_a_source_is_never_a_gap():
    assert Deduplicator().check(ev(source="s", seq=500)) == "new"


def test_events_without_id_or_seq_are_always_new():
    d = Deduplicator()
    assert d.check(ev()) == "new"
    assert d.check(ev()) == "new"
    assert d.check(ev(source="s")) == "new"
    assert d.pending() == ([], {})


def test_oldest_ids_are_evicted_beyond_the_cap():
    d = Deduplicator(max_ids=3)
    for name in "abcd":
        d.check(ev(id=name))
    assert len(d) == 3
    assert "a" not in d
    assert d.check(ev(id="d")) == "duplicate"
    assert d.check(ev(id="a")) == "new"


def test_pending_lists_what_changed_since_the_last_flush():
    d = Deduplicator()
    d.check(ev(id="a", source="s", seq=1))
    d.check(ev(id="b", source="s", seq=2))
    d.check(ev(id="b", source="s", seq=2))
    assert d.pending() == (["a", "b"], {"s": 2})
    d.mark_flushed()
    assert d.pending() == ([], {})
    d.check(ev(source="t", seq=9))
    assert d.pending() == ([], {"t": 9})


def test_loaded_state_restores_duplicates_and_sequences_without_being_pending():
    d = Deduplicator()
    d.load(["x", "y"], {"s": 10})
    assert d.pending() == ([], {})
    assert d.check(ev(id="x")) == "duplicate"
    assert d.check(ev(source="s", seq=10)) == "duplicate"
    assert d.check(ev(source="s", seq=12)) == ("gap", 11, 11)


def test_load_keeps_the_newest_ids_and_the_highest_seq():
    d = Deduplicator(max_ids=2)
    d.check(ev(source="s", seq=20))
    d.load(["a", "b", "c"], {"s": 10, "t": 3})
    assert "a" not in d and "b" in d and "c" in d
    assert d.last_seq("s") == 20
    assert d.last_seq("t") == 3


def test_a_resent_id_under_a_fresh_seq_advances_the_source_and_reports_no_false_gap():
    from brokerflow.bus.sequence import Deduplicator
    from brokerflow.workflow.events import Event

    dedup = Deduplicator()
    first = Event("rate.push", None, {"currency": "EUR", "usd": 1.1}, source="crm", seq=1, id="a")
    resent = Event("rate.push", None, {"currency": "EUR", "usd": 1.1}, source="crm", seq=2, id="a")
    following = Event("rate.push", None, {"currency": "EUR", "usd": 1.1}, source="crm", seq=3, id="b")
    assert dedup.check(first) == "new"
    assert dedup.check(resent) == "duplicate"
    assert dedup.check(following) == "new"
    assert dedup.last_seq("crm") == 3


def test_a_late_event_that_fills_a_reported_gap_is_processed_once():
    d = Deduplicator()
    d.check(ev(source="s", seq=1))
    assert d.check(ev(source="s", seq=5)) == ("gap", 2, 4)
    d.mark_flushed()
    assert d.check(ev(id="late-3", source="s", seq=3)) == "new"
    assert d.check(ev(id="other", source="s", seq=3)) == "duplicate"  # that seq is taken now
    assert d.check(ev(source="s", seq=2)) == "new"
    assert d.check(ev(source="s", seq=4)) == "new"
    assert d.check(ev(source="s", seq=4)) == "duplicate"
    assert d.check(ev(source="s", seq=1)) == "duplicate"  # never in a gap
    assert d.last_seq("s") == 5
    assert d.pending() == (["late-3"], {})  # late events move no seq
    assert d.check(ev(source="s", seq=6)) == "new"


def test_a_late_event_whose_id_was_seen_is_still_a_duplicate():
    d = Deduplicator()
    d.check(ev(source="s", seq=1))
    d.check(ev(id="x", source="s", seq=4))
    assert d.check(ev(id="x", source="s", seq=2)) == "duplicate"
    assert d.check(ev(id="y", source="s", seq=2)) == "new"


def test_only_the_latest_gaps_of_a_source_are_remembered_for_late_events():
    from brokerflow.bus.sequence import MAX_GAP_RANGES

    d = Deduplicator()
    d.check(ev(source="s", seq=0))
    for index in range(MAX_GAP_RANGES + 1):  # gaps 1, 3, 5, ...
        assert d.check(ev(source="s", seq=2 * index + 2)) == ("gap", 2 * index + 1, 2 * index + 1)
    assert d.check(ev(source="s", seq=1)) == "duplicate"  # the oldest gap was forgotten
    assert d.check(ev(source="s", seq=3)) == "new"
    assert d.check(ev(source="s", seq=2 * MAX_GAP_RANGES + 1)) == "new"


def test_a_duplicate_id_under_a_jumping_seq_moves_no_seq_and_hides_no_gap():
    d = Deduplicator()
    assert d.check(ev(id="a", source="s", seq=1)) == "new"
    d.mark_flushed()
    assert d.check(ev(id="a", source="s", seq=50)) == "duplicate"
    assert d.last_seq("s") == 1
    assert d.pending() == ([], {})
    assert d.check(ev(id="b", source="s", seq=51)) == ("gap", 2, 50)


def test_sources_are_bounded_and_the_least_recently_seen_is_forgotten():
    d = Deduplicator(max_sources=3)
    for source in "abc":
        d.check(ev(source=source, seq=10))
    d.check(ev(source="a", seq=11))
    d.check(ev(source="d", seq=10))
    assert [d.last_seq(source) for source in "abcd"] == [11, None, 10, 10]
    # A forgotten source starts afresh: its next event is new, whatever its seq.
    assert d.check(ev(source="b", seq=3)) == "new"
    assert d.last_seq("c") is None


def test_a_forgotten_source_takes_its_gaps_with_it():
    d = Deduplicator(max_sources=1)
    d.check(ev(source="a", seq=1))
    d.check(ev(source="a", seq=9))
    d.check(ev(source="b", seq=1))  # forgets "a" and its gap 2..8
    assert d.check(ev(source="a", seq=5)) == "new"
    assert d.check(ev(source="a", seq=3)) == "duplicate"


def test_unflushed_seqs_stay_bounded_by_the_source_cap_while_the_store_is_down():
    d = Deduplicator(max_sources=3)
    for index in range(100):
        d.check(ev(source=f"s{index}", seq=1))
    _, seqs = d.pending()
    assert seqs == {"s97": 1, "s98": 1, "s99": 1}


def test_load_keeps_no_more_sources_than_the_cap():
    d = Deduplicator(max_sources=2)
    d.load([], {"a": 1, "b": 2, "c": 3})
    assert sum(d.last_seq(source) is not None for source in "abc") == 2


def test_load_of_more_sources_than_the_cap_keeps_the_most_recently_seen():
    """The store hands sources least recently seen first; the last ``max_sources`` of them survive."""
    d = Deduplicator(max_sources=100)
    d.load([], {f"s{n}": n + 1 for n in range(50_000)})
    assert d.last_seq("s49999") == 50_000 and d.last_seq("s49900") == 49_901
    assert d.last_seq("s49899") is None and d.last_seq("s0") is None
    # A replayed id-less event of a kept source is a duplicate; a forgotten source starts afresh.
    assert d.check(ev(source="s49950", seq=49_951)) == "duplicate"
    assert d.check(ev(source="s0", seq=1)) == "new"
    # The loaded order is the recency order: the next new source forgets the least recent kept one.
    assert d.last_seq("s49900") is None and d.last_seq("s49901") == 49_902
    assert d.pending() == ([], {"s0": 1})
