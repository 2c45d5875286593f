"""The replay endpoint of PROTOCOL §7: ``SOURCES`` and ``REPLAY`` served from a journal.

A ROUTER socket, so REQ clients (and DEALERs) work and one slow client never blocks the
socket's state machine the way a REP's strict send/receive order would. One request is one
msgpack frame; every reply is one msgpack frame.

Decisions the protocol leaves open (documented in docs/delivery.md):

- ``max`` above ``MAX_EVENTS`` (5000) is clamped to it, not refused; below 1 it is refused.
- A reply is also capped at ``MAX_REPLY_BYTES`` of topics and payloads (but holds at least one
  event); ``next_seq`` then says where to go on, as it does after ``max``.
- ``from_seq`` below the stored range starts at ``first_seq`` (the caller sees the trimmed part
  from ``first_seq > from_seq``); past the end: ``events`` ``[]`` and ``next_seq`` null.
- ``to_seq`` below ``from_seq`` is refused (``VALIDATION_FAILED``); an unknown source is
  ``NOT_FOUND``; keys the protocol does not name are ignored.
- Anything malformed — not msgpack, not a map, more than one frame, a frame over
  ``MAX_REQUEST_BYTES``, a wrong type (a bool is not an int), a seq outside 0..2^63-1 — gets
  ``{"error": {"code", "text"}}`` with a code of PROTOCOL §3 and a throttled log line; the
  socket goes on serving. The text names types and lengths, never request contents.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import msgpack
import zmq

from brokerflow.bus._loop import poll_until
from brokerflow.bus._throttle import LogThrottle, held_note
from brokerflow.bus.journal import MAX_SEQ, Journal
from brokerflow.errors import BadRequest, BrokerflowError, NotFound, UnknownCommand, ValidationFailed

__all__ = ["DEFAULT_EVENTS", "MAX_EVENTS", "MAX_REPLY_BYTES", "MAX_REQUEST_BYTES", "ReplayServer", "handle"]

log = logging.getLogger("brokerflow.bus.replay")

DEFAULT_EVENTS = 1000
MAX_EVENTS = 5000
MAX_REPLY_BYTES = 8 * 1024 * 1024
MAX_REQUEST_BYTES = 64 * 1024
# Past this libzmq drops the connection before buffering the frame; between the two the
# request is answered BAD_REQUEST (a REQ client then gets an answer, not a hang).
HARD_FRAME_CAP = 16 * MAX_REQUEST_BYTES
MAX_SOURCE_CHARS = 256  # as PROTOCOL §2's ``source``
ERROR_LOG_EVERY_S, ERROR_LOG_BURST = 10.0, 10


def _int(request: dict, key: str, low: int, high: int = MAX_SEQ) -> int:
    value = request[key]
    if type(value) is not int:  # bool is a subclass of int: refused too
        raise ValidationFailed(f"{key} must be an int, not {type(value).__name__}",
                               details=[{"path": key, "message": "not an int"}])
    if not low <= value <= high:
        raise ValidationFailed(f"{key} must be within {low}..{high}",
                               details=[{"path": key, "message": "out of range"}])
    return value


def _replay(journal: Journal, request: dict) -> dict[str, Any]:
    for key in ("source", "from_seq"):
        if key not in request:
            raise ValidationFailed(f"REPLAY needs {key}", details=[{"path": key, "message": "required"}])
    source = request["source"]
    if type(source) is not str or not 0 < len(source) <= MAX_SOURCE_CHARS:
        raise ValidationFailed(f"source must be a str of 1..{MAX_SOURCE_CHARS} chars",
                               details=[{"path": "source", "message": "not a valid source"}])
    from_seq = _int(request, "from_seq", 0)
    to_seq = None if request.get("to_seq") is None else _int(request, "to_seq", from_seq)
    wanted = DEFAULT_EVENTS if request.get("max") is None else _int(request, "max", 1, 2**64)
    first, last = journal.first_seq(source), journal.last_seq(source)
    if first is None or last is None:
        raise NotFound(f"no events stored for this source ({len(source)} chars)")
    rows = journal.read(source, from_seq, to_seq, min(wanted, MAX_EVENTS), MAX_REPLY_BYTES)
    upper = last if to_seq is None else min(to_seq, last)
    next_seq = rows[-1][0] + 1 if rows and rows[-1][0] < upper else None
    return {"events": [[topic, payload] for _seq, topic, payload in rows], "next_seq": next_seq,
            "first_seq": first, "last_seq": last}


def handle(journal: Journal, frame: bytes) -> dict[str, Any]:
    """The reply to one request frame; a ``BrokerflowError`` for anything the caller got wrong."""
    if len(frame) > MAX_REQUEST_BYTES:
        raise BadRequest(f"request frame too large: {len(frame)} bytes > {MAX_REQUEST_BYTES}")
    try:
        request = msgpack.unpackb(frame, raw=False, max_map_len=64, max_array_len=64, max_str_len=MAX_REQUEST_BYTES,
                                  max_bin_len=MAX_REQUEST_BYTES, max_ext_len=MAX_REQUEST_BYTES)
    except Exception as exc:  # msgpack raises ValueError, FormatError, StackError, UnicodeError...
        raise BadRequest(f"request is not valid msgpack ({type(exc).__name__}, {len(frame)} bytes)") from None
    if not isinstance(request, dict):
        raise BadRequest(f"request must be a map, not {type(request).__name__}")
    cmd = request.get("cmd")
    if cmd is None:
        raise BadRequest("request has no cmd")
    if cmd == "SOURCES":
        return {"sources": {source: {"first_seq": first, "last_seq": last}
                            for source, (first, last) in journal.sources().items()}}
    if cmd == "REPLAY":
        return _replay(journal, request)
    raise UnknownCommand(f"unknown cmd ({type(cmd).__name__}); SOURCES and REPLAY are served")


class ReplayServer:
    """A ROUTER socket bound at ``endpoint`` answering from the journal at ``journal_path``.

    Built in one thread and run in another (``run`` in a thread of its own is the usual way):
    the journal connection is opened ``shared`` for that hand-over, and only the thread that
    polls uses it and the socket afterwards.
    """

    def __init__(self, endpoint: str, journal_path: str, context: zmq.Context | None = None) -> None:
        self._owns_context = context is None
        self._context = context if context is not None else zmq.Context()
        self._sock = self._context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_CAP)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError:
            self._sock.close(linger=0)
            if self._owns_context:
                self._context.term()
            raise
        self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode("ascii")
        self._journal = Journal(journal_path, shared=True)
        self._error_log = LogThrottle(ERROR_LOG_EVERY_S, ERROR_LOG_BURST)
        self.answered = 0
        self.errors = 0

    def poll_once(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for requests; answer every one queued; return how many."""
        if not self._sock.poll(timeout_ms, zmq.POLLIN):
            return 0
        answered = 0
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return answered
            self._answer(frames)
            answered += 1

    def _answer(self, frames: list[zmq.Frame]) -> None:
        # A REQ peer's envelope is [identity, b""]; a DEALER may send [identity, body] alone.
        split = 2 if len(frames) > 2 and len(frames[1]) == 0 else 1
        envelope, body = [frame.bytes for frame in frames[:split]], frames[split:]
        try:
            if len(body) != 1:
                raise BadRequest(f"expected one request frame, got {len(body)}")
            if len(body[0]) > MAX_REQUEST_BYTES:  # refused before a copy of it is made
                raise BadRequest(f"request frame too large: {len(body[0])} bytes > {MAX_REQUEST_BYTES}")
            reply = handle(self._journal, body[0].bytes)
        except BrokerflowError as exc:
            reply = self._refuse(exc.code, exc.text)
        except Exception as exc:  # noqa: BLE001 - a journal failure costs one request, never the socket
            log.exception("replay: request failed")
            reply = self._refuse("INTERNAL", f"the journal could not be read ({type(exc).__name__})")
        try:
            self._sock.send_multipart([*envelope, msgpack.packb(reply, use_bin_type=True)], zmq.NOBLOCK)
        except zmq.Again:
            pass  # the client went away or stopped reading; ROUTER would drop it anyway
        self.answered += 1

    def _refuse(self, code: str, text: str) -> dict[str, Any]:
        self.errors += 1
        held = self._error_log.ready()
        if held is not None:
            log.warning("replay: request refused: %s %s%s", code, text, held_note(held))
        return {"error": {"code": code, "text": text}}

    def run(self, stop: threading.Event) -> None:
        """``poll_once(100)`` until ``stop`` is set; then the caller calls ``close()``."""
        poll_until(stop, self.poll_once, lambda: self._sock.closed, log, "replay: poll failed")

    def close(self) -> None:
        if not self._sock.closed:
            self._sock.close(linger=0)
        self._journal.close()
        if self._owns_context and not self._context.closed:
            self._context.term()
