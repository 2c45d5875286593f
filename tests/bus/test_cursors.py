"""Replay-served sources: taken in seq order, caught up from the journal, holes kept open only
while the endpoint is down, pages checked against what was asked."""

from __future__ import annotations

import pytest

from brokerflow.bus.cursors import Cursors


def served(start: int | None = None, first: int = 1, last: int = 100, live_seq: int | None = None) -> Cursors:
    cursors = Cursors({"crm": start} if start is not None else {})
    cursors.serve("crm", first, last, live_seq)
    return cursors


def test_a_new_source_starts_at_its_checkpoint_else_after_what_was_taken_live_else_at_the_journals_start():
    assert served(start=41).by_source["crm"].next_seq == 41
    assert served(live_seq=9).by_source["crm"].next_seq == 10
    assert served(first=5).by_source["crm"].next_seq == 5
    assert not served(start=41).by_source["crm"].live
    assert served(start=101).by_source["crm"].live  # nothing stored past it: live at once


def test_catching_up_holds_live_events_and_takes_the_replayed_pages_in_order():
    cursors = served(start=1)
    assert cursors.wanted() == [("crm", 1, None)]
    assert cursors.on_live("crm", 5, endpoint_up=True) == "hold"
    page = cursors.on_page("crm", 1, None, [1, 2, 3], first_seq=1, more=True)
    assert page.take == [1, 2, 3] and page.lost == [] and page.lying is None
    assert cursors.wanted() == [("crm", 4, None)]
    last = cursors.on_page("crm", 4, None, [4, 5], first_seq=1, more=False)
    assert last.take == [4, 5] and cursors.by_source["crm"].live
    assert cursors.on_live("crm", 5, endpoint_up=True) == "duplicate"
    assert cursors.on_live("crm", 6, endpoint_up=True) == "take"
    assert cursors.wanted() == []


def test_events_held_back_past_a_last_page_answered_before_they_were_journaled_are_fetched_next():
    cursors = served(start=1, last=3)
    assert cursors.on_live("crm", 8, endpoint_up=True) == "hold"  # journaled after the page below
    page = cursors.on_page("crm", 1, None, [1, 2, 3], first_seq=1, more=False)
    assert page.take == [1, 2, 3] and not cursors.by_source["crm"].live
    assert cursors.wanted() == [("crm", 4, None)]  # not live at 4: 4..8 would wait for a 9th event
    assert cursors.on_page("crm", 4, None, [4, 5, 6, 7, 8], first_seq=1, more=False).take == [4, 5, 6, 7, 8]
    assert cursors.by_source["crm"].live and cursors.positions() == {"crm": 9} and cursors.wanted() == []


def test_events_held_back_that_the_journal_still_lacks_become_a_hole():
    cursors = served(start=1, last=3)
    assert cursors.on_live("crm", 8, endpoint_up=True) == "hold"
    cursors.on_page("crm", 1, None, [1, 2, 3], first_seq=1, more=False)
    empty = cursors.on_page("crm", 4, None, [], first_seq=1, more=False)
    assert empty.take == [] and cursors.by_source["crm"].live
    assert cursors.positions() == {"crm": 4} and cursors.wanted() == [("crm", 4, 8)]
    assert cursors.on_live("crm", 9, endpoint_up=True) == "take"
    given_up = cursors.on_page("crm", 4, 8, [4, 5], first_seq=1, more=False)
    assert given_up.take == [4, 5] and given_up.lost == [(6, 8)] and cursors.positions() == {"crm": 10}


def test_a_live_gap_with_the_endpoint_up_turns_into_a_catch_up():
    cursors = served(start=10, last=9)
    assert cursors.on_live("crm", 10, endpoint_up=True) == "take"
    assert cursors.on_live("crm", 13, endpoint_up=True) == "hold"
    assert cursors.wanted() == [("crm", 11, None)] and cursors.open_gaps() == 1
    assert cursors.on_page("crm", 11, None, [11, 12, 13], 1, more=False).take == [11, 12, 13]
    assert cursors.open_gaps() == 0 and cursors.positions() == {"crm": 14}


def test_with_the_endpoint_down_live_events_go_on_and_the_hole_stays_open_until_fetched():
    cursors = served(start=10, last=9)
    assert cursors.on_live("crm", 10, endpoint_up=False) == "take"
    assert cursors.on_live("crm", 14, endpoint_up=False) == "take"
    assert cursors.positions() == {"crm": 11} and cursors.open_gaps() == 1
    assert cursors.on_live("crm", 12, endpoint_up=False) == "take"  # a late one fills its place
    assert cursors.wanted() == [("crm", 11, 11)]
    page = cursors.on_page("crm", 11, 11, [11], first_seq=1, more=False)
    assert page.take == [11] and page.filled == 1 and cursors.positions() == {"crm": 13}
    assert cursors.wanted() == [("crm", 13, 13)]
    assert cursors.on_page("crm", 13, 13, [13], first_seq=1, more=False).take == [13]
    assert cursors.positions() == {"crm": 15} and cursors.open_gaps() == 0


def test_what_the_journal_no_longer_holds_is_lost_for_good_and_counted():
    cursors = served(start=3, first=8)
    page = cursors.on_page("crm", 3, None, [8, 9, 12], first_seq=8, more=False)
    assert page.lost == [(3, 7), (10, 11)] and page.take == [8, 9, 12]
    assert cursors.positions() == {"crm": 13}


def test_a_hole_the_journal_lacks_is_given_up_once_the_endpoint_says_so():
    cursors = served(start=1, last=0)
    cursors.on_live("crm", 1, endpoint_up=False)
    cursors.on_live("crm", 6, endpoint_up=False)
    page = cursors.on_page("crm", 2, 5, [3], first_seq=1, more=False)
    assert page.take == [3] and page.lost == [(2, 2), (4, 5)] and cursors.open_gaps() == 0


@pytest.mark.parametrize("source, from_seq, to_seq, seqs, more", [
    ("other", 1, None, [1], False),       # a source that is not served
    ("crm", 5, None, [4, 5], False),      # below what was asked
    ("crm", 5, None, [6, 5], False),      # out of order
    ("crm", 5, None, [5, 5], False),      # repeated
    ("crm", 2, 3, [2, 9], False),         # past to_seq
    ("crm", 5, None, [], True),           # nothing, yet more to come
])
def test_a_lying_page_is_refused_and_changes_nothing(source, from_seq, to_seq, seqs, more):
    cursors = served(start=5, last=10)
    cursors.on_live("crm", 11, endpoint_up=False)
    before = (cursors.by_source["crm"].next_seq, list(cursors.by_source["crm"].holes))
    page = cursors.on_page(source, from_seq, to_seq, seqs, first_seq=1, more=more)
    assert page.lying and page.take == []
    assert (cursors.by_source["crm"].next_seq, cursors.by_source["crm"].holes) == before


def test_a_late_answer_to_an_old_request_is_ignored():
    cursors = served(start=1)
    cursors.on_page("crm", 1, None, [1, 2], first_seq=1, more=True)
    stale = cursors.on_page("crm", 1, None, [1, 2], first_seq=1, more=True)
    assert stale.take == [] and cursors.positions() == {"crm": 3}


def test_an_endpoint_that_stops_answering_lets_its_sources_go_live():
    cursors = served(start=1)
    cursors.endpoint_lost(["crm"])
    assert cursors.on_live("crm", 7, endpoint_up=False) == "take"
    assert cursors.wanted() == [("crm", 1, 6)]


def test_events_held_back_when_the_endpoint_stops_answering_are_a_hole_to_fetch():
    cursors = served(start=1)
    assert cursors.on_live("crm", 5, endpoint_up=True) == "hold"
    cursors.endpoint_lost(["crm"])
    assert cursors.wanted() == [("crm", 1, 5)] and cursors.positions() == {"crm": 1}
    assert cursors.on_live("crm", 6, endpoint_up=False) == "take"


def test_a_rewind_reads_the_source_again_from_a_seq_and_says_what_was_taken_before_except_the_holes():
    cursors = served(start=101, last=100)  # live at 101
    for seq in (101, 102, 106, 107):  # 103..105 missed while the endpoint was down: a hole
        cursors.on_live("crm", seq, endpoint_up=False)
    assert cursors.by_source["crm"].holes == [[103, 105]]
    assert cursors.rewind("crm", 102) == (108, ((103, 105),))
    cursor = cursors.by_source["crm"]
    assert (cursor.next_seq, cursor.live, cursor.holes) == (102, False, [])  # the catch-up brings the hole too
    assert cursors.wanted() == [("crm", 102, None)]
    page = cursors.on_page("crm", 102, None, [102, 103, 104, 105, 106, 107], first_seq=1, more=False)
    assert page.take == [102, 103, 104, 105, 106, 107] and cursor.live
    assert cursors.rewind("crm", 200) is None  # nothing taken at or past it: nothing to read again


def test_a_rewind_of_a_source_not_served_yet_lowers_where_it_will_start():
    cursors = Cursors({"crm": 50})
    assert cursors.rewind("crm", 20) is None and cursors.rewind("crm", 30) is None
    assert cursors.rewind("other", 7) is None
    assert cursors.serve("crm", 1, 100).next_seq == 20
    assert cursors.serve("other", 1, 100).next_seq == 7
