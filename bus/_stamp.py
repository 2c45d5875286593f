"""The relay's per-burst work on raw messages: check, stamp ``source``/``seq`` where missing.

Frames come from a publisher the relay does not control, so each is hostile input: a message
that is not two frames, a frame over the size caps, a payload that is not a msgpack map, or a
``source``/``seq`` of the wrong type is counted as malformed and dropped (the caller logs it,
throttled). What passes keeps its bytes untouched unless it was stamped: only then is the map
re-encoded, so the common cases cost one ``unpackb`` and no ``packb``.

Stamping (PROTOCOL §7 ``--source``): an event with a valid ``source`` and ``seq`` keeps both. An
event without a ``source`` gets ``source`` = the relay's name and that source's next seq (any
seq it carried is replaced: it numbered an unnamed stream). An event with a ``source`` but no
``seq`` gets that source's next seq. The next seq continues from the journal's last one (and
from the highest seq passed through under that source since), so a restarted relay never
reuses a seq. Without a name, an event without a ``source`` is dropped (``unnamed``).
"""

from __future__ import annotations

from collections.abc import Callable

import msgpack

from brokerflow.bus.journal import MAX_SEQ, JournalRow

__all__ = ["Burst", "Stamper"]

MAX_TOPIC_BYTES = 128  # as the engine's codec
MAX_SOURCE_CHARS = 256
# Container caps for big payloads (the engine's codec uses the same); smaller payloads cannot
# exceed them, and msgpack's defaults then cost no keyword parse per event.
MAX_MAP_LEN, MAX_ARRAY_LEN = 10_000, 100_000
_DEFAULT_LIMITS_OK = min(2 * MAX_MAP_LEN, MAX_ARRAY_LEN)


class Burst:
    """One burst's outcome: journal rows, the frames to publish (same order), and why others were dropped."""

    __slots__ = ("rows", "frames", "malformed", "unnamed", "stamped", "first_reason")

    def __init__(self) -> None:
        self.rows: list[JournalRow] = []
        self.frames: list[list[bytes]] = []
        self.malformed = self.unnamed = self.stamped = 0
        self.first_reason = ""

    def drop(self, reason: str) -> None:
        self.malformed += 1
        if not self.first_reason:
            self.first_reason = reason


class Stamper:
    """Holds the next seq of every source the relay stamps; ``burst(messages)`` does one burst."""

    def __init__(self, name: str | None, last_seq: Callable[[str], int | None], max_bytes: int) -> None:
        self.name = name
        self._last_seq = last_seq  # the journal's, read once per stamped source
        self._max_bytes = max_bytes
        self._counters: dict[str, int] = {}

    def burst(self, messages: list[list[bytes]]) -> Burst:
        out = Burst()
        rows, frames, counters = out.rows, out.frames, self._counters
        unpackb, max_bytes = msgpack.unpackb, self._max_bytes
        for message in messages:
            if len(message) != 2:
                out.drop(f"expected 2 frames [topic, payload], got {len(message) if len(message) < 2 else 'more'}")
                continue
            topic, payload = message
            if len(topic) > MAX_TOPIC_BYTES or len(payload) > max_bytes:
                out.drop(f"frame too large: topic {len(topic)} bytes, payload {len(payload)} bytes")
                continue
            try:
                event = unpackb(payload) if len(payload) <= _DEFAULT_LIMITS_OK else unpackb(
                    payload, max_map_len=MAX_MAP_LEN, max_array_len=MAX_ARRAY_LEN)
            except Exception as exc:  # noqa: BLE001 - msgpack raises many kinds; the text may quote bytes
                out.drop(f"payload is not valid msgpack ({type(exc).__name__}, {len(payload)} bytes)")
                continue
            if type(event) is not dict:
                out.drop(f"payload is a {type(event).__name__}, not a map")
                continue
            source, seq = event.get("source"), event.get("seq")
            if (type(source) is str and type(seq) is int and 0 <= seq <= MAX_SEQ
                    and len(source) <= MAX_SOURCE_CHARS):
                rows.append((source, seq, topic, payload))
                frames.append(message)
                if source in counters and counters[source] < seq:
                    counters[source] = seq
                continue
            self._stamp(out, event, source, seq, topic)
        return out

    def _stamp(self, out: Burst, event: dict, source: object, seq: object, topic: bytes) -> None:
        if source is not None and (type(source) is not str or len(source) > MAX_SOURCE_CHARS):
            out.drop(f"source is a {type(source).__name__} of length {_length(source)}, not a str of "
                     f"at most {MAX_SOURCE_CHARS} chars")
            return
        if seq is not None and not (type(seq) is int and 0 <= seq <= MAX_SEQ):
            out.drop(f"seq is a {type(seq).__name__}, not an int in 0..2^63-1")
            return
        if source is None:
            if self.name is None:
                out.unnamed += 1
                return
            source = self.name
        seq = self._next(source, out.rows)
        event["source"], event["seq"] = source, seq
        payload = msgpack.packb(event, use_bin_type=True)
        out.rows.append((source, seq, topic, payload))
        out.frames.append([topic, payload])
        out.stamped += 1

    def _next(self, source: str, pending: list[JournalRow]) -> int:
        last = self._counters.get(source)
        if last is None:
            # Once per source: the journal's last seq, and any seq of it earlier in this burst.
            last = max([self._last_seq(source) or 0] + [seq for src, seq, _, _ in pending if src == source])
        self._counters[source] = last + 1
        return last + 1


def _length(value: object) -> int:
    try:
        return len(value)  # type: ignore[arg-type]
    except TypeError:
        return 0
