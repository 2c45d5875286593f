from __future__ import annotations

import msgpack
import pytest

from brokerflow.bus.codec import decode, encode
from brokerflow.errors import MalformedEvent

MAX = 4096
TRADE = {"event": "EV_RECORD_ADD", "record": {"order": 1, "login": 1001, "cmd": "OP_BUY"},
         "source": "mt5", "seq": 7, "id": "ev-1", "ts": 1_700_000_000_000}


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def test_encode_then_decode_gives_the_event_back():
    event = decode(encode("trade.push", TRADE), received_ms=5, max_bytes=MAX)
    assert (event.topic, event.event, event.source, event.seq, event.id, event.ts_ms, event.received_ms) == (
        "trade.push", "EV_RECORD_ADD", "mt5", 7, "ev-1", 1_700_000_000_000, 5)
    assert event.record == TRADE["record"]


def test_extra_record_fields_are_kept():
    payload = {**TRADE, "record": {**TRADE["record"], "symbol": "EURUSD", "custom": [1, 2]}}
    event = decode(encode("trade.push", payload), 0, MAX)
    assert event.record["custom"] == [1, 2]


@pytest.mark.parametrize(("frames", "reason"), [
    ([b"trade.push"], "expected 2 frames"),
    ([b"trade.push", pack(TRADE), b"x"], "expected 2 frames"),
    ([], "expected 2 frames"),
    ([b"trade.push", pack({**TRADE, "record": {**TRADE["record"], "comment": "x" * MAX}})], "too large"),
    ([b"t" * 200, pack(TRADE)], "topic frame too large"),
    ([b"\xff\xfe", pack(TRADE)], "not utf-8"),
    ([b"trade.push", b"\xc1not msgpack"], "not valid msgpack"),
    ([b"trade.push", pack(TRADE) + b"\x00"], "not valid msgpack"),
    ([b"trade.push", pack(TRADE)[:-3]], "not valid msgpack"),
    ([b"trade.push", pack([1, 2, 3])], "must be a map"),
    ([b"trade.push", pack("text")], "must be a map"),
    ([b"order.push", pack(TRADE)], "unknown topic"),
    ([b"trade.push", pack({**TRADE, "record": {"order": "1", "login": 1, "cmd": "OP_BUY"}})], "record.order"),
    ([b"trade.push", pack({**TRADE, "record": {"order": True, "login": 1, "cmd": "OP_BUY"}})], "order"),
    ([b"trade.push", pack({**TRADE, "record": {"login": 1001, "cmd": "OP_BUY"}})], "record.order is missing"),
    ([b"trade.push", pack({**TRADE, "record": "nope"})], "record must be a map"),
    ([b"trade.push", pack({**TRADE, "seq": "7"})], "payload.seq"),
    ([b"trade.push", pack({**TRADE, "source": 3})], "payload.source"),
    ([b"trade.push", pack({**TRADE, "event": None})], "payload.event is missing"),
    ([b"rate.push", pack({"record": {"currency": "EUR", "usd": "1.1"}})], "record.usd"),
    ([b"trade.push", pack({1: "x", **TRADE})], "not valid msgpack"),
    ([b"trade.push", pack({b"bin-key": "x", **TRADE})], "payload key of type bytes"),
    ([b"trade.push", pack({**TRADE, "record": {**TRADE["record"], b"k": 1}})], "record key of type bytes"),
    ([b"trade.push", pack({**TRADE, "record": {**TRADE["record"], 5: 1}})], "not valid msgpack"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_malformed_messages_raise_with_a_reason(frames, reason):
    with pytest.raises(MalformedEvent) as info:
        decode(frames, 0, MAX)
    assert reason in info.value.text


def test_reasons_never_quote_payload_contents():
    secret = "s3cr3t-token-value"
    cases = [
        [b"trade.push", b"\xc1" + secret.encode()],
        [b"trade.push", pack({secret.encode(): 1, **TRADE})],
        [b"trade.push", pack({**TRADE, "record": {**TRADE["record"], secret.encode(): 1}})],
        [b"trade.push", pack({**TRADE, "record": {"order": secret, "login": 1, "cmd": "OP_BUY"}})],
        [b"trade.push", pack({**TRADE, "comment": secret * 1000})],
    ]
    for frames in cases:
        with pytest.raises(MalformedEvent) as info:
            decode(frames, 0, MAX)
        assert secret not in info.value.text


def test_a_deeply_nested_payload_is_malformed_not_a_crash():
    nested = b"\x91" * 5000 + b"\x00"  # [[[[...0...]]]] five thousand deep
    with pytest.raises(MalformedEvent, match="not valid msgpack"):
        decode([b"trade.push", nested], 0, 1 << 20)


def test_huge_container_headers_are_refused_before_allocating():
    # An array header claiming 2**31 entries in a 5-byte payload.
    with pytest.raises(MalformedEvent, match="not valid msgpack"):
        decode([b"trade.push", b"\xdd\x7f\xff\xff\xff"], 0, MAX)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"seq": (1 << 64) - 1}, "payload.seq must be between 0 and 2**63-1"),
    ({"seq": 1 << 63}, "payload.seq must be between 0 and 2**63-1"),
    ({"seq": -5}, "payload.seq must be between 0 and 2**63-1"),
    ({"ts": 1 << 63}, "payload.ts must be between -2**63 and 2**63-1"),
    ({"record": {**TRADE["record"], "login": 1 << 63}}, "trade.push: record.login is outside"),
    ({"record": {**TRADE["record"], "profit": (1 << 64) - 1}}, "trade.push: record.profit is outside"),
], ids=["seq-uint64", "seq-2**63", "seq-negative", "ts", "login", "profit"])
def test_ints_msgpack_carries_but_storage_cannot_are_malformed(changes, reason):
    # msgpack carries unsigned 64-bit ints; SQLite and PostgreSQL hold signed ones only, and an
    # accepted seq of 2**63 made every later write of the de-duplication state overflow.
    with pytest.raises(MalformedEvent) as info:
        decode(encode("trade.push", {**TRADE, **changes}), 0, MAX)
    assert info.value.text.startswith(reason)


def test_an_unknown_topic_is_reported_by_its_length_only():
    for frames in ([b"evil<script>", b"\xc1"], [b"evil<script>", pack(TRADE)]):
        with pytest.raises(MalformedEvent) as info:
            decode(frames, 0, MAX)
        assert "script" not in info.value.text and "12 chars" in info.value.text


def test_id_and_source_longer_than_256_characters_are_malformed():
    for name in ("id", "source"):
        with pytest.raises(MalformedEvent, match=f"payload.{name} is 300 characters, more than 256"):
            decode(encode("trade.push", {**TRADE, name: "i" * 300}), 0, MAX)


def test_events_with_an_empty_id_are_told_apart_by_source_and_seq():
    from brokerflow.bus.sequence import Deduplicator

    dedup = Deduplicator()
    verdicts = [dedup.check(decode(encode("trade.push", {**TRADE, "id": "", "seq": seq}), 0, MAX))
                for seq in (1, 2, 3)]
    assert verdicts == ["new", "new", "new"]
    assert dedup.pending()[0] == []


def _outcome(decoder, frames):
    try:
        event = decoder(frames)
    except MalformedEvent as exc:
        return ("malformed", exc.text)
    return ("event", event.topic, event.event, repr(event.record), [type(v) for v in event.record.values()],
            event.source, event.seq, event.id, event.ts_ms)


def test_the_typed_fast_path_decides_as_the_msgpack_path_does():
    # The codec decodes the usual payload with msgspec and everything else with msgpack: over
    # hostile variations (odd keys and values at every level, mutated bytes, duplicate keys, a
    # float32, bad UTF-8) the result is what the msgpack path alone gives, event or reason.
    import random
    import struct

    from brokerflow.bus.codec import _unpack
    from brokerflow.workflow.events import parse_decoded

    def msgpack_path(frames):
        topic = frames[0].decode()
        return parse_decoded(topic, _unpack(topic, frames[1]), 0)

    base = pack(TRADE)
    order = pack("order") + pack(1) + pack("login") + pack(2) + pack("cmd") + pack("OP_BUY")
    head = pack("event") + pack("EV_RECORD_ADD") + pack("record")
    cases = [
        base, base + b"\x00", base[:-1], b"\x80", b"\xc0",
        b"\x87" + b"".join(pack(k) + pack(v) for k, v in TRADE.items()) + pack("seq") + pack(9),  # seq twice
        b"\x82" + head + b"\x84" + order + pack("order") + pack(5),  # record.order twice
        b"\x82" + head + b"\x84" + order + pack("profit") + b"\xca" + struct.pack(">f", 1.1),  # float32
        b"\x82" + head + b"\x84" + order + pack("comment") + b"\xa2\xff\xfe",  # a value not UTF-8
        b"\x83" + head + pack(TRADE["record"]) + b"\xa2\xff\xfe" + pack(1),  # a key not UTF-8
    ]
    values = [None, True, 0, -1, 1 << 63, (1 << 64) - 1, -(1 << 63), 1.5, float("nan"), "", "x", "i" * 300,
              b"bin", [1], {"a": 1}, {b"k": 1}, msgpack.ExtType(5, b"x"), msgpack.Timestamp(1, 2), "OP_BUY"]
    keys = ["event", "record", "id", "ts", "source", "seq", "extra", b"record"]
    rng = random.Random(15)
    for _ in range(3000):
        payload = {**TRADE, "record": dict(TRADE["record"])}
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.5:
                payload[rng.choice(keys)] = rng.choice(values)
            elif isinstance(payload.get("record"), dict):
                name = rng.choice(["order", "login", "cmd", "profit", "symbol", "custom", b"k"])
                payload["record"][name] = rng.choice(values)
        cases.append(pack(payload))
    for _ in range(3000):
        mutated = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        cases.append(bytes(mutated))
    kinds = set()
    for raw in cases:
        for topic in (b"trade.push", b"rate.push"):
            expected = _outcome(msgpack_path, [topic, raw])
            assert _outcome(lambda frames: decode(frames, 0, 1 << 20), [topic, raw]) == expected
            kinds.add(expected[0])
    assert kinds == {"event", "malformed"}
