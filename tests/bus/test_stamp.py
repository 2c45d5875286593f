"""The relay's burst work without sockets: which messages pass untouched, which are stamped, which dropped."""

from __future__ import annotations

import msgpack
import pytest

from brokerflow.bus._stamp import Stamper


def message(payload: object, topic: bytes = b"trade.push") -> list[bytes]:
    return [topic, msgpack.packb(payload, use_bin_type=True)]


def stamper(name: str | None = "mt5", journal: dict | None = None) -> Stamper:
    return Stamper(name, (journal or {}).get, max_bytes=1024)


def test_an_event_with_source_and_seq_passes_byte_for_byte():
    frames = [b"trade.push", msgpack.packb({"source": "up", "seq": 7, "record": {"login": 1}}) + b""]
    burst = stamper().burst([frames])
    assert burst.frames == [frames] and burst.frames[0][1] is frames[1]
    assert burst.rows == [("up", 7, b"trade.push", frames[1])] and burst.stamped == 0


def test_events_without_a_source_get_the_name_and_seqs_after_the_journals_last():
    burst = stamper(journal={"mt5": 41}).burst([message({"record": {}}), message({"record": {}, "seq": 3})])
    assert [(source, seq) for source, seq, _, _ in burst.rows] == [("mt5", 42), ("mt5", 43)]
    assert [msgpack.unpackb(f[1])["seq"] for f in burst.frames] == [42, 43] and burst.stamped == 2


def test_an_event_with_a_source_but_no_seq_gets_that_sources_next_seq_after_any_seen():
    one = stamper()
    burst = one.burst([message({"source": "up", "seq": 9}), message({"source": "up"})])
    assert [(s, q) for s, q, _, _ in burst.rows] == [("up", 9), ("up", 10)]
    burst = one.burst([message({"source": "up", "seq": 20}), message({"source": "up"})])
    assert [(s, q) for s, q, _, _ in burst.rows] == [("up", 20), ("up", 21)]


def test_without_a_name_an_event_without_a_source_is_dropped_and_counted():
    burst = stamper(name=None).burst([message({"record": {}}), message({"source": "up", "seq": 1})])
    assert burst.unnamed == 1 and [(s, q) for s, q, _, _ in burst.rows] == [("up", 1)]


@pytest.mark.parametrize("frames", [
    [b"trade.push"],
    [b"trade.push", msgpack.packb({}), b""],
    [b"t" * 129, msgpack.packb({})],
    [b"trade.push", b"\x81" + b"\xa1" * 1100],
    [b"trade.push", b"\xc1"],
    [b"trade.push", msgpack.packb([1, 2])],
    [b"trade.push", msgpack.packb({"source": 5, "seq": 1})],
    [b"trade.push", msgpack.packb({"source": "x" * 257, "seq": 1})],
    [b"trade.push", msgpack.packb({"source": "up", "seq": True})],
    [b"trade.push", msgpack.packb({"source": "up", "seq": -1})],
    [b"trade.push", msgpack.packb({"seq": "1"})],
    [b"trade.push", msgpack.packb({1: 2})],
])
def test_hostile_messages_are_dropped_as_malformed_and_the_burst_goes_on(frames):
    burst = stamper().burst([frames, message({"record": {}})])
    assert burst.malformed == 1 and burst.first_reason
    assert [(s, q) for s, q, _, _ in burst.rows] == [("mt5", 1)]
