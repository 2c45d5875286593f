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

Journal and replay (PROTOCOL §7) for producers written in Python: with ``journal=PATH`` each
event is committed to that SQLite journal (``bus.journal``) before it is sent, ``first_seq``
continues after the journal's last seq for the source (a restart never reuses one), and with
``replay_bind=EP`` a replay endpoint (``bus.replay_server``) serves the journal from a thread of
its own, so an engine started with ``serve --replay EP`` recovers what it missed. One commit per
``publish`` costs tens of microseconds; the journal is trimmed to ``retain_events`` per source
and ``retain_hours`` every ``TRIM_EVERY`` publishes. Without ``journal`` nothing changes.

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
from brokerflow.bus.journal import Journal
from brokerflow.bus.replay_server import ReplayServer

__all__ = ["Publisher"]

TRIM_EVERY = 10_000  # publishes between journal trims


class Publisher(XpubOwner):
    """A PUB (XPUB) socket that numbers events per source; ``publish`` is thread-safe."""

    def __init__(self, endpoint: str, source: str, bind: bool = False, first_seq: int = 1,
                 hwm: int = 1_000_000, context: zmq.Context | None = None, linger_ms: int = 1000,
                 journal: str | None = None, replay_bind: str | None = None, retain_events: int = 10_000_000,
                 retain_hours: float = 168.0) -> None:
        if replay_bind is not None and journal is None:
            raise ValueError("replay_bind needs a journal to serve")
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
        self._subs = SubscriptionCounter()
        self._lock = threading.Lock()
        self._journal: Journal | None = None
        self._replay: ReplayServer | None = None
        self._replay_thread: threading.Thread | None = None
        self._replay_stop = threading.Event()
        self.replay_endpoint: str | None = None
        self._retain = (retain_events, int(retain_hours * 3_600_000))
        if journal is not None:
            try:
                self._open_journal(journal, replay_bind)
            except BaseException:
                self.close()
                raise
            first_seq = max(first_seq, (self._journal.last_seq(source) or 0) + 1)
        self._next_seq = first_seq
        self._published = 0

    def _open_journal(self, path: str, replay_bind: str | None) -> None:
        # Used under self._lock by whichever thread publishes: one at a time, so shared is safe.
        self._journal = Journal(path, shared=True)
        if replay_bind is not None:
            self._replay = ReplayServer(replay_bind, path, self._context)
            self.replay_endpoint = self._replay.endpoint
            self._replay_thread = threading.Thread(target=self._replay.run, args=(self._replay_stop,),
                                                   name="publisher-replay", daemon=True)
            self._replay_thread.start()

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
            packed = msgpack.packb(payload, use_bin_type=True)
            if self._journal is not None:
                self._journal.append([(self.source, seq, topic_frame, packed)], clock.now_ms())
                self._published += 1
                if self._published % TRIM_EVERY == 0:
                    self._journal.trim(self._retain[0], self._retain[1], clock.now_ms())
            self._sock.send_multipart([topic_frame, packed])
            self._next_seq = seq + 1
        return seq

    def publish_raw(self, frames: list[bytes]) -> None:
        """Send frames as they are (tests use it for malformed messages); no seq is used, nothing journaled."""
        with self._lock:
            self._sock.send_multipart(frames)

    def close(self) -> None:
        """Stop the replay endpoint, close the journal, then the socket."""
        self._replay_stop.set()
        if self._replay_thread is not None:
            self._replay_thread.join(5)
        if self._replay is not None:
            self._replay.close()
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        super().close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
