"""Bus frames <-> ``Event``: the only place raw bytes from the wire are trusted into objects.

A frame comes from anyone who can reach the SUB socket, so decoding is defensive: the size is
capped before msgpack sees it, msgpack's container limits are set explicitly, and every failure
is one ``MalformedEvent`` whose reason names lengths and types only — never payload contents,
which may hold customer data or secrets.

Two decoders, one verdict: the payload every publisher sends (the six protocol keys, a record
of scalars, at most ``_DEFAULT_LIMITS_OK`` bytes) is decoded by msgspec straight into typed
fields, half the CPU of msgpack plus the key checks; whatever does not fit that shape exactly
is decoded again by msgpack with the caps above, which accepts or refuses it as it always did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
import msgspec

from brokerflow.errors import MalformedEvent
from brokerflow.workflow.events import TOPICS, Event, parse_decoded, plain_event

MAX_TOPIC_BYTES = 128
# Per-container caps (a record has tens of keys); msgpack would otherwise allow as many entries
# as the payload has bytes, and each entry costs ~50x its wire size as Python objects.
MAX_MAP_LEN = 10_000
MAX_ARRAY_LEN = 100_000
_KNOWN_TOPICS = {topic.encode("utf-8"): topic for topic in TOPICS}


def encode(topic: str, payload: Mapping[str, Any]) -> list[bytes]:
    """The two frames ``[topic, msgpack(payload)]`` of a bus event and an outbound message (docs/protocol.md)."""
    return [topic.encode("utf-8"), msgpack.packb(payload, use_bin_type=True)]


def decode(frames: list[bytes], received_ms: int, max_bytes: int) -> Event:
    """Validate and decode one bus message; raise ``MalformedEvent`` with a short reason."""
    if len(frames) != 2:
        # The drain hands over the first two frames and a marker of a longer message.
        got = len(frames) if len(frames) < 2 else "more"
        raise MalformedEvent(f"expected 2 frames [topic, payload], got {got}")
    raw_topic, raw_payload = frames
    if len(raw_topic) > MAX_TOPIC_BYTES:
        raise MalformedEvent(f"topic frame too large: {len(raw_topic)} bytes")
    if len(raw_payload) > max_bytes:
        raise MalformedEvent(f"payload too large: {len(raw_payload)} bytes > {max_bytes}")
    topic = _KNOWN_TOPICS.get(raw_topic) if type(raw_topic) is bytes else None  # a bytearray is unhashable
    if topic is None:
        try:
            topic = bytes(raw_topic).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedEvent(f"topic is not utf-8 ({len(raw_topic)} bytes)") from None
    if len(raw_payload) <= _DEFAULT_LIMITS_OK:
        try:
            plain = _decode_plain(raw_payload)
        except Exception:  # noqa: BLE001 - not the usual shape (or not msgpack): the full path decides
            plain = None
        if plain is not None:
            event = plain_event(topic, plain.event, plain.record, plain.source, plain.seq, plain.id, plain.ts,
                                received_ms)
            if event is not None:
                return event
    payload = _unpack(topic, raw_payload)
    return parse_decoded(topic, payload, received_ms)


class _PlainPayload(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The payload every publisher sends, as msgspec decodes it typed: the fast path's shape.

    Anything else — an unknown or non-str key at any level, a container inside the record, a
    value of another type, bytes after the map, a payload over ``_DEFAULT_LIMITS_OK`` — fails
    here and takes the msgpack path below, which accepts or refuses it exactly as before and
    words the reason. So this shape accepts only payloads that path accepts too, as the same
    values: str keys, scalars, ints in msgpack's range (the range checks follow in
    ``plain_event``), no timestamps or extension types, nothing skipped unread. msgspec builds
    the fields in C without an intermediate dict: about half of msgpack's decode plus its key
    checks per event (docs/benchmarks.md, "The hot path (issue 15)").
    """

    record: dict[str, str | int | float | bool | None]
    event: str | None = None
    id: str | None = None
    ts: int | None = None
    source: str | None = None
    seq: int | None = None


_decode_plain = msgspec.msgpack.Decoder(_PlainPayload).decode


# msgpack's own container limits default to the payload's length (maps: half of it), which for
# payloads up to this size are already within the caps above; passing the caps costs a keyword
# parse per event, so only bigger payloads pay it.
_DEFAULT_LIMITS_OK = min(2 * MAX_MAP_LEN, MAX_ARRAY_LEN)
_unpackb = msgpack.unpackb


def _unpack(topic: str, raw: bytes) -> Any:
    try:
        if len(raw) <= _DEFAULT_LIMITS_OK:
            payload = _unpackb(raw)
        else:
            payload = _unpackb(raw, raw=False, strict_map_key=True, use_list=True,
                               max_map_len=MAX_MAP_LEN, max_array_len=MAX_ARRAY_LEN)
    except Exception as exc:  # msgpack raises ValueError, FormatError, StackError, UnicodeError...
        # The exception text may quote bytes of the payload: report its type and the length only.
        raise MalformedEvent(
            f"{_safe_topic(topic)}: payload is not valid msgpack ({type(exc).__name__}, {len(raw)} bytes)"
        ) from None
    if isinstance(payload, dict):
        _check_keys(topic, payload)
    return payload


def _check_keys(topic: str, payload: dict) -> None:
    """Top-level and record keys must be str (msgpack lets bin keys through as bytes)."""
    for key in payload:
        if not isinstance(key, str):
            raise MalformedEvent(f"{_safe_topic(topic)}: payload key of type {type(key).__name__}")
    record = payload.get("record")
    if isinstance(record, dict):
        for key in record:
            if not isinstance(key, str):
                raise MalformedEvent(f"{_safe_topic(topic)}: record key of type {type(key).__name__}")


def _safe_topic(topic: str) -> str:
    """The topic for a reason: a known one by name, anything else by its length only."""
    return topic if topic in _KNOWN_TOPIC_NAMES else f"unknown topic ({len(topic)} chars)"


_KNOWN_TOPIC_NAMES = frozenset(TOPICS)
