"""The event ingress: one SUB socket → decode → de-duplicate → ``sink(list_of_events)``.

One thread owns the socket and calls ``poll_once`` (``run`` loops it). Each poll drains what
is queued, up to ``batch_max`` messages, and hands the good events to ``sink`` as one list, so
the next hop pays one message per batch rather than one per event. A malformed frame, a sink
exception or a failing store is logged and counted; none of them stops the loop.

The de-duplication state (recent ids, last seq per source) is restored from ``event_store``
when the ingress starts and written back once per poll, after the sink took the batch: a crash
in between replays that batch (at-least-once), it never loses it.

Memory guard: ``zmq.MAXMSGSIZE`` is ``settings.max_frame_bytes``; ZeroMQ disconnects a peer
that sends a bigger frame (the peer reconnects by itself), so such a frame is never buffered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import zmq

from brokerflow.errors import MalformedEvent
from brokerflow.settings import Settings
from bus._drain import open_drain
from bus.codec import decode
from bus.sequence import DEFAULT_MAX_IDS, Deduplicator
from workflow.events import Event

log = logging.getLogger("brokerflow.bus")

DEFAULT_BATCH_MAX = 2000
# The stored ids are trimmed to the window every this many new ids: small deletes, often, so the
# table stays the window's size and no prune holds the database's write lock for long.
PRUNE_EVERY = 5000


class EventStore(Protocol):
    """``store.events`` of the storage package."""

    def load_state(self, limit_ids: int) -> tuple[list[str], dict[str, int]]: ...

    def record(self, ids: list[str], last_seq: dict[str, int]) -> None: ...

    def prune(self, keep: int) -> int: ...


class Ingress:
    """The SUB socket of PROTOCOL §2 and its counters."""

    def __init__(self, settings: Settings, sink: Callable[[list[Event]], None],
                 event_store: EventStore | None = None, clock: Callable[[], float] = time.time,
                 context: zmq.Context | None = None, batch_max: int = DEFAULT_BATCH_MAX,
                 max_ids: int = DEFAULT_MAX_IDS) -> None:
        self._sink = sink
        self._store = event_store
        self._clock = clock
        self._max_bytes = settings.max_frame_bytes
        self._batch_max = batch_max
        self._dedup = Deduplicator(max_ids)
        self._unpruned = 0
        self._counts = {"received": 0, "malformed": 0, "duplicates": 0, "gaps": 0}
        self._counts_lock = threading.Lock()
        if event_store is not None:
            ids, last_seq = event_store.load_state(max_ids)
            self._dedup.load(ids, last_seq)
        self._owns_context = context is None
        self._context = context if context is not None else zmq.Context()
        try:
            self._sock = self._open(settings)
        except zmq.ZMQError:
            if self._owns_context:
                self._context.term()
            raise
        # Keeps the GIL between frames: each release can cost this thread a switch interval.
        self._drain = open_drain(self._sock, self._max_bytes)

    def _open(self, settings: Settings) -> zmq.Socket:
        sock = self._context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, settings.events_hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, settings.max_frame_bytes)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._bound: list[str] = []
        try:
            for endpoint in settings.events_bind:
                sock.bind(endpoint)
                self._bound.append(sock.getsockopt(zmq.LAST_ENDPOINT).decode("ascii"))
            for endpoint in settings.events_connect:
                sock.connect(endpoint)
        except zmq.ZMQError:
            sock.close(linger=0)
            raise
        return sock

    def bound_endpoints(self) -> list[str]:
        """The endpoints really bound (``tcp://127.0.0.1:0`` reports the port it got)."""
        return list(self._bound)

    def stats(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self._counts)

    def poll_once(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for messages, process what is queued; return messages read."""
        if not self._sock.poll(timeout_ms, zmq.POLLIN):
            return 0
        messages = self._read_batch()
        received_ms = int(self._clock() * 1000)
        events, counts = self._classify(messages, received_ms)
        with self._counts_lock:
            for name, value in counts.items():
                self._counts[name] += value
        if events:
            try:
                self._sink(events)
            except Exception:
                log.exception("bus: sink failed on a batch of %d events", len(events))
        self._persist()
        return len(messages)

    def _read_batch(self) -> list[list[bytes]]:
        return self._drain(self._batch_max)

    def _classify(self, messages: list[list[bytes]], received_ms: int) -> tuple[list[Event], dict[str, int]]:
        counts = {"received": len(messages), "malformed": 0, "duplicates": 0, "gaps": 0}
        events: list[Event] = []
        check = self._dedup.check
        for frames in messages:
            try:
                event = decode(frames, received_ms, self._max_bytes)
            except MalformedEvent as exc:
                counts["malformed"] += 1
                log.warning("bus: malformed message dropped: %s", exc.text)
                continue
            except Exception as exc:  # noqa: BLE001 - a decoder bug must cost one frame, never the poll
                counts["malformed"] += 1
                log.error("bus: message dropped, the decoder failed on it (%s)", type(exc).__name__)
                continue
            verdict = check(event)
            if verdict == "duplicate":
                counts["duplicates"] += 1
                continue
            if verdict != "new":
                counts["gaps"] += 1
                _, first, last = verdict
                log.warning("bus: gap from source %r: seq %d..%d missing (%d events)",
                            event.source, first, last, last - first + 1)
            events.append(event)
        return events, counts

    def _persist(self) -> None:
        if self._store is None:
            return
        ids, last_seq = self._dedup.pending()
        if not ids and not last_seq:
            return
        try:
            self._store.record(ids, last_seq)
        except Exception:
            log.exception("bus: could not persist de-duplication state (%d ids); will retry", len(ids))
            return
        self._dedup.mark_flushed()
        self._unpruned += len(ids)
        if self._unpruned >= min(PRUNE_EVERY, self._dedup.max_ids):
            self._unpruned = 0
            try:
                self._store.prune(self._dedup.max_ids)
            except Exception:
                log.exception("bus: could not trim the stored event ids; will retry")

    def run(self, stop: threading.Event) -> None:
        """Loop ``poll_once(100)`` until ``stop`` is set; then the caller calls ``close()``."""
        while not stop.is_set():
            try:
                self.poll_once(100)
            except zmq.ZMQError as exc:
                if self._sock.closed or exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                log.exception("bus: ingress poll failed")
            except Exception:
                log.exception("bus: ingress poll failed")

    def close(self) -> None:
        if not self._sock.closed:
            self._sock.close(linger=0)
        if self._owns_context and not self._context.closed:
            self._context.term()
