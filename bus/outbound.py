"""The engine's outbound PUB (PROTOCOL §4): ``notify.manager``, ``customer.changed``, ``kyc.changed``.

Several action actors send from their own threads and a ZeroMQ socket must not be used by two
threads at once, so ``send`` holds a lock around the socket; a send is a non-blocking enqueue
(microseconds), so the lock is never held long. The socket is an XPUB bound by the engine:
subscribers connect, and ``wait_subscribed`` lets tests and tools wait for them (slow joiner).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import zmq

from bus._xpub import SubscriptionCounter, XpubOwner, last_endpoint, open_xpub
from bus.codec import encode

# Subscription messages queue up on an XPUB until read; read them now and then.
_DRAIN_EVERY = 1024


class Outbound(XpubOwner):
    """Thread-safe ``send(topic, payload)`` on one bound PUB socket."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None, hwm: int = 1_000_000,
                 linger_ms: int = 500) -> None:
        self._owns_context = context is None
        self._context = context if context is not None else zmq.Context()
        try:
            self._sock = open_xpub(self._context, endpoint, True, hwm, linger_ms)
        except zmq.ZMQError:
            if self._owns_context:
                self._context.term()
            raise
        self.bound_endpoint = last_endpoint(self._sock)
        self._subs = SubscriptionCounter()
        self._lock = threading.Lock()
        self._sent = 0

    def send(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Publish ``[topic, msgpack(payload)]``; dropped silently only past the (high) HWM."""
        frames = encode(topic, payload)
        with self._lock:
            if self._sock.closed:
                return
            self._sock.send_multipart(frames)
            self._sent += 1
            if self._sent % _DRAIN_EVERY == 0:
                self._subs.drain(self._sock)

    @property
    def sent(self) -> int:
        return self._sent

