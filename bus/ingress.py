"""The event ingress: one SUB socket → decode → de-duplicate → ``sink(list_of_events)``.

One thread owns the socket and calls ``poll_once`` (``run`` loops it). Each poll drains what
is queued, up to ``batch_max`` messages, and hands the good events to ``sink`` as one list, so
the next hop pays one message per batch rather than one per event. A malformed frame, a sink
exception or a failing store is logged and counted; none of them stops the loop.

Backpressure: with a ``Handoff`` (the engine's), the ingress sees how many events wait in the
router's mailbox (its own batches and the engine's echoes); at ``settings.ingress_max_inflight``
of them it stops reading and waits for the router, so the SUB socket's receive high-water mark
(and then the publishers' send HWM) holds the overload instead of the router's unbounded
mailbox, and a management command queued behind them (a rule reload, a reference upsert that
waits for the replica) waits seconds, not minutes. Counted in ``paused`` (once per pause) and
logged at most once a minute. One lock and one add per batch.

The de-duplication state (recent ids, last seq per source) is restored from ``event_store``
when the ingress starts and written back once the router has taken the batch that changed it
(checked every poll, and at ``close``). So a crash never stores an id whose event was still
queued for the router: a producer that resends after the crash has it processed. What a crash
does lose are events the router had taken and the actors downstream had not finished (their
mailboxes are memory); their ids are stored, so a resend of those is dropped as a duplicate.

Memory guard: ``zmq.MAXMSGSIZE`` is a hard cap of ``FRAME_CAP_FACTOR`` × ``max_frame_bytes``.
A frame between the two reaches the codec (cut to ``max_frame_bytes + 1`` by the drain) and is
counted as malformed; a bigger one makes ZeroMQ drop that connection, so it is never buffered.
A publisher that connected to us dials again by itself; a publisher we connected to
(``events_connect``) would not: libzmq ends that session for good on such a protocol error. So
a socket monitor watches for disconnects: each is counted (``disconnects``) and logged, and an
``events_connect`` endpoint is dialled again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Protocol

import zmq
from zmq.utils.monitor import parse_monitor_message

from brokerflow.bus._drain import open_drain
from brokerflow.bus._loop import poll_until
from brokerflow.bus._throttle import LogThrottle, held_note
from brokerflow.bus.codec import decode
from brokerflow.bus.recovery import RECOVERY_COUNTERS, Recovery
from brokerflow.bus.sequence import DEFAULT_MAX_IDS, Deduplicator
from brokerflow.errors import MalformedEvent
from brokerflow.settings import Settings
from brokerflow.workflow.events import Event

log = logging.getLogger("brokerflow.bus")

DEFAULT_BATCH_MAX = 2000
# The stored ids are trimmed to the window every this many new ids: small deletes, often, so the
# table stays the window's size and no prune holds the database's write lock for long.
PRUNE_EVERY = 5000
PAUSE_LOG_EVERY_S = 60.0  # the "reading paused" warning, at most this often
# MAXMSGSIZE is this many times max_frame_bytes: a frame somewhat too big is refused by the codec
# (counted, the connection kept); only past this does ZeroMQ drop the connection.
FRAME_CAP_FACTOR = 4
DISCONNECT_LOG_EVERY_S = 10.0
# Malformed messages and gaps: each kind logs at most WIRE_LOG_BURST lines per WIRE_LOG_EVERY_S
# (bus.malformed and bus.gaps count them all), so a sender's flood cannot flood the log.
WIRE_LOG_EVERY_S, WIRE_LOG_BURST = 10.0, 10
COUNTERS = ("received", "malformed", "duplicates", "gaps", "paused", "disconnects")  # stats() keys, and:


class EventStore(Protocol):
    """``store.events`` of the storage package."""

    def load_state(self, limit_ids: int, limit_sources: int) -> tuple[list[str], dict[str, int]]:
        """Recent ids (newest last) and the newest ``limit_sources`` sources, least recently seen first."""
        ...

    def record(self, ids: list[str], last_seq: dict[str, int]) -> None: ...

    def prune(self, keep: int, keep_sources: int) -> int:
        """Keep the newest ``keep`` ids and the ``keep_sources`` most recently stored sources."""
        ...


class Handoff:
    """Events handed to the router and taken by it: the ingress's ceiling and its "taken" signal.

    Every ``EventBatch`` for the router goes through ``hand`` (the ingress's batches and the
    engine's echoes alike), under one lock, so the running count follows the mailbox's order.
    The router calls ``taken_by_router`` as it takes each (possibly merged) batch. A batch whose
    count is at or below ``taken`` has left the mailbox. One lock and one add per batch, never
    per event.
    """

    def __init__(self) -> None:
        self.handed = 0
        self.taken = 0
        self._lock = threading.Lock()
        self._taken_changed = threading.Condition()

    def hand(self, send: Callable[[list[Event]], None], events: list[Event]) -> int:
        """``send(events)``, counted; the running count once they are in the mailbox."""
        with self._lock:
            send(events)
            self.handed += len(events)
            return self.handed

    def taken_by_router(self, count: int) -> None:
        """The router took ``count`` events from its mailbox (its own thread only)."""
        with self._taken_changed:
            self.taken += count
            self._taken_changed.notify_all()

    def wait_taken(self, mark: int, timeout_s: float) -> bool:
        with self._taken_changed:
            return self._taken_changed.wait_for(lambda: self.taken >= mark, timeout_s)


class Ingress:
    """The event bus's SUB socket and its counters."""

    def __init__(self, settings: Settings, sink: Callable[[list[Event]], None],
                 event_store: EventStore | None = None, clock: Callable[[], float] = time.time,
                 context: zmq.Context | None = None, batch_max: int = DEFAULT_BATCH_MAX,
                 max_ids: int = DEFAULT_MAX_IDS, handoff: Handoff | None = None,
                 recovery: Recovery | None = None) -> None:
        self._sink = sink
        self._handoff = handoff
        self._max_inflight = settings.ingress_max_inflight
        # Batches handed to the router and not yet taken by it, oldest first: (the handoff's
        # count once the batch was in, the de-duplication state the batch changed).
        self._inflight: deque[tuple[int, list[str], dict[str, int]]] = deque()
        self._ready_ids: list[str] = []  # taken by the router, not yet stored
        self._ready_seq: dict[str, int] = {}
        self._paused = False
        self._pause_log = LogThrottle(PAUSE_LOG_EVERY_S)
        self._store = event_store
        self._recovery = recovery
        self._clock = clock
        self._max_bytes = settings.max_frame_bytes
        self._batch_max = batch_max
        self._dedup = Deduplicator(max_ids)
        self._unpruned = 0
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._disconnect_log = LogThrottle(DISCONNECT_LOG_EVERY_S)
        self._malformed_log = LogThrottle(WIRE_LOG_EVERY_S, WIRE_LOG_BURST)
        self._gap_log = LogThrottle(WIRE_LOG_EVERY_S, WIRE_LOG_BURST)
        self._counts_lock = threading.Lock()
        if event_store is not None:
            ids, last_seq = event_store.load_state(max_ids, self._dedup.max_sources)
            self._dedup.load(ids, last_seq)
        self._owns_context = context is None
        self._context = context if context is not None else zmq.Context()
        try:
            self._sock = self._open(settings)
        except zmq.ZMQError:
            if self._owns_context:
                self._context.term()
            raise
        self._connects = {endpoint.encode(): endpoint for endpoint in settings.events_connect}
        self._monitor = self._sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        # Keeps the GIL between frames: each release can cost this thread a switch interval.
        self._drain = open_drain(self._sock, self._max_bytes)
        if recovery is not None:
            recovery.discover(self._dedup.last_seq, self._dedup.open_gaps)

    def _open(self, settings: Settings) -> zmq.Socket:
        sock = self._context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, settings.events_hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, settings.max_frame_bytes * FRAME_CAP_FACTOR)
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
            counts = dict(self._counts)
        if self._recovery is not None:
            counts.update(self._recovery.stats())
        else:
            counts.update(dict.fromkeys(RECOVERY_COUNTERS, 0))
        return counts

    def poll_once(self, timeout_ms: int, ceiling: bool = True) -> int:
        """Wait up to ``timeout_ms`` for messages, process what is queued; return messages read.

        With ``ceiling`` (the loop), a poll that finds ``ingress_max_inflight`` events not yet
        taken by the router waits for the router instead of reading; the stop path drains
        without it (it reads a bounded number of polls).
        """
        self._collect_taken()
        self._check_connections()
        if ceiling and self._over_ceiling() and not self._wait_for_router(timeout_ms):
            return 0
        if self._recovery is None:
            if not self._sock.poll(timeout_ms, zmq.POLLIN):
                return 0
            messages, replayed = self._read_batch(), []
        else:
            messages, replayed = self._poll_with_recovery(timeout_ms)
            if not messages and not replayed:
                return 0
        received_ms = int(self._clock() * 1000)
        events, counts = self._classify(messages, received_ms, replayed)
        with self._counts_lock:
            for name, value in counts.items():
                self._counts[name] += value
        mark = self._inflight[-1][0] if self._inflight else 0
        if events:
            try:
                if self._handoff is None:
                    self._sink(events)
                else:
                    mark = self._handoff.hand(self._sink, events)
            except Exception:
                log.exception("bus: sink failed on a batch of %d events", len(events))
                # Never delivered: not stored as seen either, so a resend after a restart runs.
                self._dedup.pending()
                self._dedup.mark_flushed()
        self._hold(mark)
        self._collect_taken()
        return len(messages)

    # -- dropped connections ---------------------------------------------------------------------
    def _check_connections(self) -> None:
        """Count the connections ZeroMQ dropped since the last poll; dial ours again."""
        while self._monitor.get(zmq.EVENTS) & zmq.POLLIN:  # a flag read, no raised Again per poll
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                endpoint = parse_monitor_message(frames)["endpoint"]
            except Exception:  # noqa: BLE001 - a monitor frame we cannot read: count it, nothing to redial
                endpoint = b""
            with self._counts_lock:
                self._counts["disconnects"] += 1
                total = self._counts["disconnects"]
            ours = self._connects.get(endpoint)
            if ours is not None:
                self._redial(ours)
            if self._disconnect_log.ready() is not None:
                log.warning("bus: a publisher connection on %s was dropped (%d so far; a frame over %d bytes, "
                            "or the peer went away)%s", endpoint.decode("ascii", "replace")[:80], total,
                            self._max_bytes * FRAME_CAP_FACTOR, "; dialling it again" if ours else "")

    def _redial(self, endpoint: str) -> None:
        """libzmq does not dial again after a protocol error (a frame over MAXMSGSIZE): we do."""
        try:
            self._sock.disconnect(endpoint)
        except zmq.ZMQError:
            pass  # the session is gone already
        try:
            self._sock.connect(endpoint)
        except zmq.ZMQError:
            log.exception("bus: could not connect to %s again", endpoint)

    # -- backpressure: batches the router has not taken yet ------------------------------------
    def _hold(self, mark: int) -> None:
        """Keep what this poll changed in the de-duplication state until the router took the batch."""
        ids, last_seq = self._dedup.pending()
        self._dedup.mark_flushed()
        if self._inflight and self._inflight[-1][0] == mark:  # nothing handed: rides with the last batch
            _, held_ids, held_seq = self._inflight[-1]
            held_ids.extend(ids)
            held_seq.update(last_seq)
        elif ids or last_seq or self._handoff is not None:
            self._inflight.append((mark, ids, last_seq))

    def _collect_taken(self) -> None:
        """Move what the router has taken to the state to store, and store it."""
        taken = self._handoff.taken if self._handoff is not None else None
        inflight = self._inflight
        while inflight and (taken is None or inflight[0][0] <= taken):
            _, ids, last_seq = inflight.popleft()
            self._ready_ids.extend(ids)
            ready_seq = self._ready_seq
            for source, seq in last_seq.items():
                ready_seq.pop(source, None)  # re-inserted: the most recently changed come last
                ready_seq[source] = seq
        # Bounded like the de-duplication window and its sources, so a store that stays down
        # cannot grow memory (a sender inventing sources included); the most recent are kept.
        if len(self._ready_ids) > self._dedup.max_ids:
            del self._ready_ids[: len(self._ready_ids) - self._dedup.max_ids]
        excess = len(self._ready_seq) - self._dedup.max_sources
        if excess > 0:
            self._ready_seq = dict(islice(self._ready_seq.items(), excess, None))
        self._persist()

    def _backlog(self) -> int:
        """Events handed to the router that it has not taken yet (0 without a handoff)."""
        handoff = self._handoff
        return 0 if handoff is None else handoff.handed - handoff.taken

    def _over_ceiling(self) -> bool:
        backlog = self._backlog()
        if backlog < self._max_inflight:
            self._paused = False
            return False
        if not self._paused:
            self._paused = True
            with self._counts_lock:
                self._counts["paused"] += 1
            if self._pause_log.ready() is not None:
                log.warning("bus: %d events wait for the router; reading paused until it takes some "
                            "(the SUB socket's high-water mark applies meanwhile)", backlog)
        return True

    def _wait_for_router(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` for the router to take events below the ceiling; room now?"""
        handoff = self._handoff
        handoff.wait_taken(handoff.handed - self._max_inflight + 1, timeout_ms / 1000.0)
        self._collect_taken()
        return not self._over_ceiling()

    def _read_batch(self) -> list[list[bytes]]:
        return self._drain(self._batch_max)

    def _poll_with_recovery(self, timeout_ms: int) -> tuple[list[list[bytes]], list[Event]]:
        """Poll the SUB socket and the replay endpoints' sockets together; the live messages
        read and the replayed events to take. Pages are asked for only while the router's
        backlog is under half the ceiling: recovery never crowds out live events."""
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        for sock in self._recovery.sockets():
            poller.register(sock, zmq.POLLIN)
        ready = {sock for sock, _ in poller.poll(timeout_ms)}
        messages = self._read_batch() if self._sock in ready else []
        ready.discard(self._sock)
        has_room = self._backlog() < self._max_inflight // 2
        return messages, self._recovery.step(ready, has_room)

    def _classify(self, messages: list[list[bytes]], received_ms: int,
                  replayed: list[Event] = ()) -> tuple[list[Event], dict[str, int]]:
        counts = {"received": len(messages), "malformed": 0, "duplicates": 0, "gaps": 0}
        events: list[Event] = list(replayed)
        check = self._dedup.check
        recovery = self._recovery
        for frames in messages:
            event = self._decode(frames, received_ms, counts)
            if event is None:
                continue
            if recovery is not None:
                served = recovery.classify(event)
                if served is not None:
                    if served == "take":
                        events.append(event)
                    elif served == "duplicate":
                        counts["duplicates"] += 1
                    continue  # "hold": the replay brings it, in order
            verdict = check(event)
            if verdict == "duplicate":
                counts["duplicates"] += 1
                continue
            if verdict != "new":
                counts["gaps"] += 1
                held = self._gap_log.ready()
                if held is not None:
                    _, first, last = verdict
                    log.warning("bus: gap from source %.64r: seq %d..%d missing (%d events)%s",
                                event.source, first, last, last - first + 1, held_note(held))
            events.append(event)
        if recovery is not None:
            # Every sequenced event is counted, served or not yet: a source an endpoint starts
            # serving later must not have a checkpoint past its events still in flight.
            tickets = [(e.source, e.seq) for e in events if e.seq is not None and e.source is not None]
            recovery.completion.accept(tickets, recovery.positions())
        return events, counts

    def _decode(self, frames: list[bytes], received_ms: int, counts: dict[str, int]) -> Event | None:
        """One message as an event; None for a malformed one (counted, logged throttled)."""
        try:
            return decode(frames, received_ms, self._max_bytes)
        except MalformedEvent as exc:
            counts["malformed"] += 1
            held = self._malformed_log.ready()
            if held is not None:
                log.warning("bus: malformed message dropped: %s%s", exc.text, held_note(held))
        except Exception as exc:  # noqa: BLE001 - a decoder bug must cost one frame, never the poll
            counts["malformed"] += 1
            log.error("bus: message dropped, the decoder failed on it (%s)", type(exc).__name__)
        return None

    def _persist(self) -> None:
        ids, last_seq = self._ready_ids, self._ready_seq
        if not ids and not last_seq:
            return
        if self._store is None:
            ids.clear()
            last_seq.clear()
            return
        try:
            self._store.record(ids, last_seq)
        except Exception:
            log.exception("bus: could not persist de-duplication state (%d ids); will retry", len(ids))
            return
        count = len(ids) + len(last_seq)  # id-less events from new sources grow the store too
        self._ready_ids, self._ready_seq = [], {}
        self._unpruned += count
        if self._unpruned >= min(PRUNE_EVERY, self._dedup.max_ids):
            self._unpruned = 0
            try:
                self._store.prune(self._dedup.max_ids, self._dedup.max_sources)
            except Exception:
                log.exception("bus: could not trim the stored event ids; will retry")

    def run(self, stop: threading.Event) -> None:
        """Loop ``poll_once(100)`` until ``stop`` is set; then the caller calls ``close()``."""
        poll_until(stop, self.poll_once, lambda: self._sock.closed, log, "bus: ingress poll failed")

    def close(self) -> None:
        """Close the socket; first store the de-duplication state of every batch the router took."""
        try:
            self._collect_taken()
        except Exception:  # noqa: BLE001 - closing goes on
            log.exception("bus: could not persist de-duplication state at close")
        if self._recovery is not None:
            self._recovery.close()
        if not self._monitor.closed:
            if not self._sock.closed:
                self._sock.disable_monitor()
            self._monitor.close(linger=0)
        if not self._sock.closed:
            self._sock.close(linger=0)
        if self._owns_context and not self._context.closed:
            self._context.term()
