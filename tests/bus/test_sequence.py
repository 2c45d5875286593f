from __future__ import annotations

from bus.sequence import Deduplicator
from workflow.events import Event


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
    from bus.sequence import Deduplicator
    from workflow.events import Event

    dedup = Deduplicator()
    first = Event("rate.push", None, {"currency": "EUR", "usd": 1.1}, source="crm", seq=1, id="a")
    resent = Event("rate.push", None, {"currency": "EUR", "usd": 1.1}, source="crm", seq=2, id="a")
    following = Event("rate.push", None, {"currency": "EUR", "usd": 1.1}, source="crm", seq=3, id="b")
    assert dedup.check(first) == "new"
    assert dedup.check(resent) == "duplicate"
    assert dedup.check(following) == "new"
    assert dedup.last_seq("crm") == 3
