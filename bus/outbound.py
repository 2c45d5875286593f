"""The engine's outbound PUB: ``notify.manager``, ``customer.changed``, ``kyc.changed``.

Several action actors send from their own threads and a ZeroMQ socket must not be used by two
threads at once, so sending holds a lock around the socket; a send is a non-blocking enqueue
(microseconds), so the lock is never held long. The socket is an XPUB bound by the engine:
subscribers connect, and ``wait_subscribed`` lets tests and tools wait for them (slow joiner).

pyzmq releases the GIL around every frame it sends; with the engine's busy threads each
release costs a wait to get the GIL back (2000 frames took 1.4 s beside four busy threads,
23 ms without the releases). So frames go to libzmq's ``zmq_send`` through ``ctypes.PyDLL``,
which keeps the GIL: safe because a send with ``ZMQ_DONTWAIT`` never waits (past the HWM an
XPUB drops, as before). Where the library pyzmq loaded cannot be found, pyzmq sends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgpack
import zmq

from brokerflow.bus import _libzmq
from brokerflow.bus._xpub import SubscriptionCounter, XpubOwner, last_endpoint, open_xpub

# Subscription messages queue up on an XPUB until read; read them now and then.
_DRAIN_EVERY = 1024
_TOPIC_FRAMES = 64  # encoded topics kept; the engine has three


class Outbound(XpubOwner):
    """Thread-safe ``send(topic, payload)`` / ``send_many(topic, payloads)`` on one bound PUB socket."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None, hwm: int = 1_000_000,
                 linger_ms: int = 500, hold_gil: bool = True) -> None:
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
        self._topics: dict[str, bytes] = {}
        self._pack = msgpack.Packer(use_bin_type=True).pack  # used under the lock only
        self._send_frames = (_libzmq.multipart_sender(self._sock) if hold_gil else None) or self._pyzmq_frames

    @property
    def holds_gil(self) -> bool:
        """Are frames sent without releasing the GIL (the fast path)?"""
        return self._send_frames != self._pyzmq_frames

    def send(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Publish ``[topic, msgpack(payload)]``; dropped silently only past the (high) HWM."""
        self.send_many(topic, (payload,))

    def send_many(self, topic: str, payloads: Iterable[Mapping[str, Any]]) -> None:
        """``send`` for each payload, in order, under one lock; the frames of two messages never mix.

        A payload msgpack cannot encode raises ``TypeError``; the ones before it went out.
        """
        topic_frame = self._topics.get(topic) or self._topic_frame(topic)
        pack, send_frames = self._pack, self._send_frames
        with self._lock:
            if self._sock.closed:
                return
            before = self._sent
            try:
                for payload in payloads:
                    send_frames((topic_frame, pack(payload)))
                    self._sent += 1
            finally:
                if self._sent // _DRAIN_EVERY != before // _DRAIN_EVERY:
                    self._subs.drain(self._sock)

    @property
    def sent(self) -> int:
        return self._sent

    def _topic_frame(self, topic: str) -> bytes:
        frame = topic.encode("utf-8")
        if len(self._topics) < _TOPIC_FRAMES:
            self._topics[topic] = frame
        return frame

    def _pyzmq_frames(self, frames: Sequence[bytes]) -> None:
        self._sock.send_multipart(frames)
