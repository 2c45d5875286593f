"""The engine's side of the replay protocol (docs/delivery.md): REQ sockets, never blocking.

One REQ socket per replay endpoint, owned by the ingress thread. A request is sent and its
socket polled together with the SUB socket, so a slow or silent endpoint never stalls live
events: past ``timeout_s`` the socket is closed (a REQ socket waiting for a reply can send
nothing else) and the endpoint backs off, doubling from ``BACKOFF_MIN_S`` to
``BACKOFF_MAX_S``. Replies are hostile input like any frame: size-capped by ZeroMQ, decoded
with msgpack's container limits, checked for shape; anything else counts as a failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq

from brokerflow.bus._throttle import LogThrottle

__all__ = ["Endpoint", "ReplayClient", "ReplyError"]

log = logging.getLogger("brokerflow.bus")

REQUEST_TIMEOUT_S = 5.0
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 10.0
MAX_REPLY_BYTES = 64 * 1024 * 1024  # a page of up to 5000 events, each capped by the engine's frame cap
PAGE_EVENTS = 1000


class ReplyError(Exception):
    """A reply that is not what the protocol says (or an error reply)."""


@dataclass
class Endpoint:
    """One replay endpoint: its socket, what it was asked, whether it answers."""

    address: str
    sock: zmq.Socket | None = None
    asked: dict[str, Any] | None = None
    asked_at: float = 0.0
    failures: int = 0
    retry_at: float = 0.0
    sources: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    answered: bool = False  # has answered SOURCES at least once

    @property
    def up(self) -> bool:
        return self.answered and self.failures == 0


class ReplayClient:
    """REQ sockets to every replay endpoint, stepped by the ingress thread."""

    def __init__(self, addresses: list[str], context: zmq.Context,
                 clock: Callable[[], float] = time.monotonic, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self._context, self._clock, self._timeout_s = context, clock, timeout_s
        self.endpoints = [Endpoint(address) for address in addresses]
        self._fail_log = LogThrottle(10.0, 5)

    # -- sending --------------------------------------------------------------------------------
    def idle(self, endpoint: Endpoint) -> bool:
        """Free to ask now: nothing in flight and not backing off."""
        return endpoint.asked is None and self._clock() >= endpoint.retry_at

    def ask(self, endpoint: Endpoint, request: dict[str, Any]) -> None:
        if endpoint.sock is None:
            endpoint.sock = self._open(endpoint.address)
        endpoint.sock.send(msgpack.packb(request, use_bin_type=True), zmq.NOBLOCK)
        endpoint.asked, endpoint.asked_at = request, self._clock()

    def _open(self, address: str) -> zmq.Socket:
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_REPLY_BYTES)
        sock.setsockopt(zmq.SNDHWM, 10)
        sock.connect(address)
        return sock

    # -- receiving ------------------------------------------------------------------------------
    def waiting(self) -> list[zmq.Socket]:
        """Sockets with a request in flight: poll these."""
        return [e.sock for e in self.endpoints if e.asked is not None and e.sock is not None]

    def receive(self, sock: zmq.Socket) -> tuple[Endpoint, dict[str, Any], dict[str, Any]] | None:
        """The (endpoint, request, checked reply) ``sock`` has; None after a failure (handled)."""
        endpoint = next(e for e in self.endpoints if e.sock is sock)
        request = endpoint.asked
        try:
            raw = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        endpoint.asked = None
        try:
            reply = _decode(raw)
            if "error" in reply:
                error = reply["error"] if isinstance(reply["error"], dict) else {}
                raise ReplyError(f"error reply {str(error.get('code'))[:40]}: {str(error.get('text'))[:200]}")
        except ReplyError as exc:
            self.fail(endpoint, str(exc))
            return None
        endpoint.failures, endpoint.retry_at = 0, 0.0
        return endpoint, request or {}, reply

    def expire(self) -> list[Endpoint]:
        """Endpoints whose request timed out (now failed and backing off)."""
        now, expired = self._clock(), []
        for endpoint in self.endpoints:
            if endpoint.asked is not None and now - endpoint.asked_at > self._timeout_s:
                self.fail(endpoint, f"no reply within {self._timeout_s:.0f} s")
                expired.append(endpoint)
        return expired

    def fail(self, endpoint: Endpoint, why: str) -> None:
        """Count a failure, close the socket (REQ is lockstep), back off."""
        endpoint.failures += 1
        endpoint.asked = None
        if endpoint.sock is not None:
            endpoint.sock.close(linger=0)
            endpoint.sock = None
        delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** min(endpoint.failures - 1, 10))
        endpoint.retry_at = self._clock() + delay
        if self._fail_log.ready() is not None:
            log.warning("replay endpoint %s: %s (failure %d; next try in %.1f s)", endpoint.address, why,
                        endpoint.failures, delay)

    def close(self) -> None:
        for endpoint in self.endpoints:
            if endpoint.sock is not None:
                endpoint.sock.close(linger=0)
                endpoint.sock = None


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        reply = msgpack.unpackb(raw, raw=False, max_str_len=1 << 20, max_bin_len=MAX_REPLY_BYTES,
                                max_array_len=100_000, max_map_len=100_000, strict_map_key=True)
    except Exception as exc:  # noqa: BLE001 - any undecodable reply is the endpoint's failure
        raise ReplyError(f"undecodable reply ({type(exc).__name__})") from None
    if not isinstance(reply, dict):
        raise ReplyError(f"reply is a {type(reply).__name__}, not a map")
    return reply


def optional_int(value: Any) -> int | None:
    """An int field of a reply (bools are not ints here); ReplyError otherwise."""
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise ReplyError(f"expected a non-negative int, got {type(value).__name__}")
    return value


def parse_sources(reply: dict[str, Any]) -> dict[str, tuple[int | None, int | None]]:
    """``SOURCES``' reply as ``{source: (first_seq, last_seq)}``."""
    sources = reply.get("sources")
    if not isinstance(sources, dict):
        raise ReplyError("SOURCES reply has no map of sources")
    out = {}
    for name, span in list(sources.items())[:10_000]:
        if not isinstance(name, str) or not name or len(name) > 256 or not isinstance(span, dict):
            raise ReplyError("SOURCES reply has a malformed source")
        out[name] = (optional_int(span.get("first_seq")), optional_int(span.get("last_seq")))
    return out


def parse_page(reply: dict[str, Any]) -> tuple[list[list[bytes]], int | None, int | None]:
    """``REPLAY``'s reply as (frames of each event, next_seq, first_seq)."""
    events = reply.get("events")
    if not isinstance(events, list):
        raise ReplyError("REPLAY reply has no list of events")
    frames = []
    for item in events:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(f, bytes) for f in item)):
            raise ReplyError("REPLAY reply has an event that is not [topic bytes, payload bytes]")
        frames.append(list(item))
    return frames, optional_int(reply.get("next_seq")), optional_int(reply.get("first_seq"))
