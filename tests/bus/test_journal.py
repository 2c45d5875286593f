"""The replay journal on real SQLite files: append, paging, byte caps, trimming, restarts."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from brokerflow.bus.journal import Journal


def rows(source: str, first: int, last: int, size: int = 10) -> list[tuple[str, int, bytes, bytes]]:
    return [(source, seq, b"trade.push", bytes([seq % 256]) * size) for seq in range(first, last + 1)]


@pytest.fixture
def journal(tmp_path):
    opened = Journal(str(tmp_path / "journal.db"))
    yield opened
    opened.close()


def test_append_counts_new_rows_and_keeps_the_first_copy_of_a_seq(journal):
    assert journal.append(rows("a", 1, 5), at_ms=1000) == 5
    assert journal.append([("a", 5, b"t", b"other"), ("a", 6, b"t", b"six")], at_ms=1001) == 1
    assert journal.read("a", 5, 5, 10, 1 << 20) == [(5, b"trade.push", bytes([5]) * 10)]
    assert journal.last_seq("a") == 6 and journal.last_seq("nobody") is None


def test_sources_name_every_source_with_its_stored_range(journal):
    journal.append(rows("b", 3, 9) + rows("a", 1, 2), at_ms=1)
    assert journal.sources() == {"a": (1, 2), "b": (3, 9)}


def test_read_pages_in_seq_order_up_to_max_events_and_to_seq(journal):
    journal.append(list(reversed(rows("a", 1, 20))), at_ms=1)
    assert [seq for seq, _, _ in journal.read("a", 1, None, 7, 1 << 20)] == list(range(1, 8))
    assert [seq for seq, _, _ in journal.read("a", 15, 17, 100, 1 << 20)] == [15, 16, 17]
    assert journal.read("a", 21, None, 100, 1 << 20) == []


def test_read_stops_before_the_byte_cap_but_always_returns_one_event(journal):
    journal.append(rows("a", 1, 10, size=100), at_ms=1)  # 110 bytes each with the topic
    assert len(journal.read("a", 1, None, 100, 330)) == 3
    assert len(journal.read("a", 1, None, 100, 329)) == 2
    assert [seq for seq, _, _ in journal.read("a", 4, None, 100, 1)] == [4]


def test_trim_by_count_keeps_the_newest_events_of_each_source(journal):
    journal.append(rows("a", 1, 10_000) + rows("b", 1, 3), at_ms=1)
    assert journal.trim(keep_events=100, keep_ms=10**9, now_ms=2) == 9_900
    assert journal.sources() == {"a": (9_901, 10_000), "b": (1, 3)}


def test_trim_by_age_deletes_old_batches_but_never_a_sources_newest_event(journal):
    journal.append(rows("a", 1, 50), at_ms=1_000)
    journal.append(rows("a", 51, 60), at_ms=5_000)
    journal.append(rows("b", 1, 5), at_ms=1_000)
    assert journal.trim(keep_events=10**6, keep_ms=2_000, now_ms=6_000) == 50 + 4
    assert journal.sources() == {"a": (51, 60), "b": (5, 5)}
    assert journal.trim(keep_events=10**6, keep_ms=0, now_ms=10**9) == 9
    assert journal.sources() == {"a": (60, 60), "b": (5, 5)}


def test_trim_goes_over_holes_in_the_seqs(journal):
    journal.append(rows("a", 1, 3) + rows("a", 100_000, 100_002), at_ms=1)
    assert journal.trim(keep_events=2, keep_ms=10**9, now_ms=2) == 4
    assert journal.sources() == {"a": (100_001, 100_002)}


def test_a_killed_writer_leaves_every_committed_batch_and_a_reopen_continues(tmp_path):
    path = str(tmp_path / "journal.db")
    script = ("import os, sys\nfrom brokerflow.bus.journal import Journal\n"
              "j = Journal(sys.argv[1])\n"
              "for b in range(10):\n"
              "    j.append([('src', b * 100 + i, b't', b'p') for i in range(1, 101)], at_ms=1)\n"
              "os.kill(os.getpid(), 9)\n")
    result = subprocess.run([sys.executable, "-c", script, path], timeout=30)
    assert result.returncode == -9
    reopened = Journal(path)
    try:
        assert reopened.sources() == {"src": (1, 1000)}
        assert reopened.last_seq("src") == 1000
    finally:
        reopened.close()


def test_synchronous_full_is_offered_and_anything_else_refused(tmp_path):
    Journal(str(tmp_path / "full.db"), synchronous="full").close()
    with pytest.raises(ValueError):
        Journal(str(tmp_path / "bad.db"), synchronous="OFF")


def test_trim_forgets_the_age_marks_of_what_it_deleted(journal):
    for batch in range(10):
        journal.append(rows("a", batch * 10 + 1, batch * 10 + 10), at_ms=batch)
    journal.trim(keep_events=25, keep_ms=10**9, now_ms=10)
    with sqlite3.connect(journal.path) as db:  # the file's own schema: marks must not outgrow the events
        marks = db.execute("SELECT seq FROM marks ORDER BY seq").fetchall()
    assert [seq for (seq,) in marks] == [80, 90, 100]  # the batches that still hold events
