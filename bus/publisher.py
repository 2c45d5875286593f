"""The producers' library: publish bus events (docs/protocol.md) with per-source sequence numbers.

Usage::

    with Publisher("tcp://127.0.0.1:5556", source="mt5-trades") as pub:
        if not pub.wait_subscribed(timeout_s=5):
            raise SystemExit("no engine is listening")
        pub.publish("trade.push", {"order": 1, "login": 1001, "cmd": "OP_BUY"}, event="EV_RECORD_ADD")

Slow joiner: ZeroMQ drops what a PUB socket sends before the subscriber's subscription has
arrived, which takes a few milliseconds after ``connect``. The socket is an XPUB, which sees
subscriptions, so ``wait_subscribed()`` returns as soon as an engine really listens — call it
once after creating the publisher (and after the engine restarts, if you must lose nothing;
the engine counts what was lost as a sequence gap). A SUB socket that binds sends its
subscription to a new peer only while its owner thread uses the socket, which a running
ingress always does; a test stepping ``Ingress.poll_once`` by hand must keep stepping it.

Sequence numbers: the engine treats ``seq`` at or below the last one it took from ``source`` as
a duplicate. A producer that restarts must continue its numbering (``first_seq``) or publish
under a new ``source``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import msgpack
import zmq

from brokerflow import clock
from brokerflow.bus._xpub import SubscriptionCounter, XpubOwner, last_endpoint, open_xpub


class Publisher(XpubOwner):
    """A PUB (XPUB) socket that numbers events per source; ``publish`` is thread-safe."""

    def __init__(self, endpoint: str, source: str, bind: bool = False, first_seq: int = 1,
                 hwm: int = 1_000_000, context: zmq.Context | None = None, linger_ms: int = 1000) -> None:
        self.source = source
        self._owns_context = context is None
        self._context = context if context is not None else zmq.Context()
        try:
            self._sock = open_xpub(self._context, endpoint, bind, hwm, linger_ms)
        except zmq.ZMQError:
            if self._owns_context:
                self._context.term()
            raise
        self.endpoint = last_endpoint(self._sock) if bind else endpoint
        self._next_seq = first_seq
        self._subs = SubscriptionCounter()
        self._lock = threading.Lock()

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def publish(self, topic: str, record: Mapping[str, Any], event: str | None = None,
                id: str | None = None, ts_ms: int | None = None) -> int:
        """Send one event; return the ``seq`` it carries."""
        payload: dict[str, Any] = {"record": dict(record), "source": self.source,
                                   "ts": clock.now_ms() if ts_ms is None else ts_ms}
        if event is not None:
            payload["event"] = event
        if id is not None:
            payload["id"] = id
        topic_frame = topic.encode("utf-8")
        with self._lock:
            seq = self._next_seq
            payload["seq"] = seq
            self._sock.send_multipart([topic_frame, msgpack.packb(payload, use_bin_type=True)])
            self._next_seq = seq + 1
        return seq

    def publish_raw(self, frames: list[bytes]) -> None:
        """Send frames as they are (tests use it for malformed messages); no seq is used."""
        with self._lock:
            self._sock.send_multipart(frames)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
