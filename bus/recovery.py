"""Recovery of what PUB/SUB lost: the ingress's use of replay endpoints (``serve --replay``).

The ingress thread owns this: it asks ``classify`` about each live event of a served source,
polls ``sockets()`` with its SUB socket, and calls ``step`` every poll, which handles replies,
times out silent endpoints, asks for the next page when the engine has room, and returns the
replayed events to take, in order. Which sources are served is learnt from ``SOURCES`` at start
(blocking, bounded) and again every ``REFRESH_S``; where each one resumes is the checkpoint
(``resume``), else where live processing got to, else the journal's start (``bus/cursors.py``).
What each event taken here costs to finish is tracked by ``Completion``, so the run log can
store the checkpoint.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Mapping

import zmq

from brokerflow.bus._throttle import LogThrottle
from brokerflow.bus.codec import decode
from brokerflow.bus.completion import Completion
from brokerflow.bus.cursors import Cursors, LiveVerdict
from brokerflow.bus.replay_client import (
    PAGE_EVENTS,
    Endpoint,
    ReplayClient,
    ReplyError,
    parse_page,
    parse_sources,
)
from brokerflow.errors import MalformedEvent
from brokerflow.workflow.events import Event

__all__ = ["Recovery", "RECOVERY_COUNTERS"]

log = logging.getLogger("brokerflow.bus")

# ``serve --cluster`` takeovers: per rewound source ``(low, high, holes)``, then the positions.
Rewound = dict[str, tuple[int, int, tuple[tuple[int, int], ...]]]
TakeoverApply = Callable[[Rewound, dict[str, int]], None]

REFRESH_S = 10.0
NEW_SOURCE_REFRESH_S = 1.0  # a live event of a source no endpoint listed asks again, at most this often
DISCOVER_TIMEOUT_S = 3.0
RECOVERY_COUNTERS = ("replayed", "gaps_filled", "gaps_open", "replay_lost", "replay_errors")


class Recovery:
    """Replay endpoints, the cursors of the sources they serve, and what was recovered."""

    def __init__(self, addresses: list[str], completion: Completion, resume: dict[str, int],
                 context: zmq.Context, max_bytes: int, clock: Callable[[], float] = time.monotonic,
                 timeout_s: float | None = None) -> None:
        self.completion = completion
        self.cursors = Cursors(resume)
        kwargs = {} if timeout_s is None else {"timeout_s": timeout_s}
        self.client = ReplayClient(addresses, context, clock, **kwargs)
        self._clock, self._max_bytes = clock, max_bytes
        self._serving: dict[str, Endpoint] = {}
        self._next_refresh = 0.0
        self.counts = {"replayed": 0, "gaps_filled": 0, "replay_lost": 0, "replay_errors": 0}
        self._lost_log = LogThrottle(10.0, 10)
        self._last_live: Callable[[str], int | None] = lambda source: None
        self._live_gaps: Callable[[str], list[tuple[int, int]]] = lambda source: []
        self._unknown_seen = False
        self._last_refresh = 0.0
        # A source first seen live before any endpoint listed it: (its first live seq, the seq
        # the engine had taken from it before), so what was missed before that is fetched too.
        self._first_seen: dict[str, tuple[int, int | None]] = {}
        self._takeovers: queue.SimpleQueue[tuple[dict[str, int], TakeoverApply]] = queue.SimpleQueue()

    # -- serve --cluster ----------------------------------------------------------------------------
    def request_takeover(self, resume: Mapping[str, int], apply: TakeoverApply) -> None:
        """From any thread: rewind each source of ``resume`` to its seq on the ingress thread,
        then call ``apply(rewound, positions)`` there, before any event read after the rewind
        is handed on (so the router learns the new ownership in the events' order)."""
        self._takeovers.put((dict(resume), apply))

    def _take_over(self) -> None:
        while True:
            try:
                resume, apply = self._takeovers.get_nowait()
            except queue.Empty:
                return
            rewound: Rewound = {}
            for source, seq in resume.items():
                got = self.cursors.rewind(source, seq)
                if got is not None:
                    rewound[source] = (seq, *got)
                    log.info("cluster: source %.64r read again from seq %d (was at %d) for the partitions taken over",
                             source, seq, got[0])
            positions = self.cursors.positions()
            self.completion.accept((), positions)  # the checkpoint falls back with the cursor at once
            apply(rewound, positions)

    # -- sources ----------------------------------------------------------------------------------
    def discover(self, last_live: Callable[[str], int | None],
                 live_gaps: Callable[[str], list[tuple[int, int]]] = lambda source: []) -> None:
        """Ask every endpoint which sources it serves, waiting up to ``DISCOVER_TIMEOUT_S``.

        Called once before the ingress reads, so a restarted engine knows its served sources
        before their first live event. An endpoint that does not answer is retried later; its
        sources (known from checkpoints) are served meanwhile with holes instead of waiting.
        """
        self._last_live, self._live_gaps = last_live, live_gaps
        for endpoint in self.client.endpoints:
            self.client.ask(endpoint, {"cmd": "SOURCES"})
        deadline = self._clock() + DISCOVER_TIMEOUT_S
        poller = zmq.Poller()
        for sock in self.client.waiting():
            poller.register(sock, zmq.POLLIN)
        while self.client.waiting() and self._clock() < deadline:
            for sock, _ in poller.poll(50):
                poller.unregister(sock)
                self._handle(sock)
        for endpoint in self.client.endpoints:
            if endpoint.asked is not None:
                self.client.fail(endpoint, "no reply to SOURCES at start")
        for source in self.cursors.resume_sources():  # checkpointed: served whatever answers
            if source not in self.cursors:
                self.cursors.serve(source, 0, -1)
        self._next_refresh = self._clock() + REFRESH_S

    def _learn(self, endpoint: Endpoint, sources: dict[str, tuple[int | None, int | None]]) -> None:
        endpoint.sources, endpoint.answered = sources, True
        for source, (first, last) in sources.items():
            self._serving.setdefault(source, endpoint)
            if source not in self.cursors:
                cursor = self.cursors.serve(source, first if first is not None else 0,
                                            last if last is not None else -1, self._last_live(source),
                                            self._missed_live(source, first))
                log.info("replay: source %.64r served by %s, from seq %d", source, endpoint.address,
                         cursor.next_seq)
                self.completion.accept((), self.cursors.positions())

    def _missed_live(self, source: str, first_stored: int | None) -> list[tuple[int, int]]:
        """What the engine missed of ``source`` while no endpoint listed it: the gaps its live
        events showed, and what came before its first live event (since what it had taken)."""
        missed = list(self._live_gaps(source))
        seen = self._first_seen.pop(source, None)
        if seen is not None:
            first_live, taken_before = seen
            low = max(first_stored or 1, (taken_before or 0) + 1)
            if low < first_live:
                missed.append((low, first_live - 1))
        return missed

    # -- the ingress's questions ----------------------------------------------------------------
    def classify(self, event: Event) -> LiveVerdict | None:
        """None for a source no endpoint serves (the ordinary de-duplication applies)."""
        source = event.source
        if source is None or event.seq is None:
            return None
        if source not in self.cursors:
            self._unknown_seen = True  # perhaps an endpoint serves it now: ask soon
            if source not in self._first_seen and len(self._first_seen) < 10_000:
                self._first_seen[source] = (event.seq, self._last_live(source))
            return None
        endpoint = self._serving.get(source)
        return self.cursors.on_live(source, event.seq, endpoint is not None and endpoint.up)

    def sockets(self) -> list[zmq.Socket]:
        return self.client.waiting()

    def step(self, readable: set[zmq.Socket], has_room: bool) -> list[Event]:
        """Handle replies, time out, ask for more when there is room; the events to take."""
        self._take_over()
        taken: list[Event] = []
        for sock in list(readable):
            taken.extend(self._handle(sock))
        for endpoint in self.client.expire():
            self.cursors.endpoint_lost([s for s, e in self._serving.items() if e is endpoint])
        now = self._clock()
        if now >= self._next_refresh or (self._unknown_seen and now - self._last_refresh >= NEW_SOURCE_REFRESH_S):
            self._next_refresh, self._last_refresh, self._unknown_seen = now + REFRESH_S, now, False
            for endpoint in self.client.endpoints:
                if self.client.idle(endpoint):
                    self.client.ask(endpoint, {"cmd": "SOURCES"})
        if has_room:
            self._ask_pages()
        return taken

    def _ask_pages(self) -> None:
        for source, from_seq, to_seq in self.cursors.wanted():
            endpoint = self._serving.get(source)
            if endpoint is None or not self.client.idle(endpoint):
                continue
            request = {"cmd": "REPLAY", "source": source, "from_seq": from_seq, "max": PAGE_EVENTS}
            if to_seq is not None:
                request["to_seq"] = to_seq
            self.client.ask(endpoint, request)

    def _handle(self, sock: zmq.Socket) -> list[Event]:
        got = self.client.receive(sock)
        if got is None:
            self.counts["replay_errors"] += 1
            return []
        endpoint, request, reply = got
        try:
            if request.get("cmd") == "SOURCES":
                self._learn(endpoint, parse_sources(reply))
                return []
            return self._page(endpoint, request, reply)
        except ReplyError as exc:
            self.counts["replay_errors"] += 1
            self.client.fail(endpoint, str(exc))
            return []

    def _page(self, endpoint: Endpoint, request: dict, reply: dict) -> list[Event]:
        frames, next_seq, first_seq = parse_page(reply)
        source, from_seq, to_seq = request["source"], request["from_seq"], request.get("to_seq")
        received_ms = int(time.time() * 1000)
        events: list[Event] = []
        for item in frames:
            try:
                event = decode(item, received_ms, self._max_bytes)
            except MalformedEvent as exc:
                raise ReplyError(f"a replayed event is malformed: {exc.text}") from None
            if event.source != source or event.seq is None:
                raise ReplyError(f"a replayed event of another source (asked {source!r})")
            events.append(event)
        outcome = self.cursors.on_page(source, from_seq, to_seq, [e.seq for e in events], first_seq,
                                       more=next_seq is not None)
        if outcome.lying:
            raise ReplyError(outcome.lying)
        for first, last in outcome.lost:
            self.counts["replay_lost"] += last - first + 1
            if self._lost_log.ready() is not None:
                log.error("replay: source %.64r seq %d..%d is not in the journal (trimmed or never journaled): "
                          "%d events lost for good", source, first, last, last - first + 1)
        self.counts["gaps_filled"] += outcome.filled
        wanted = set(outcome.take)
        taken = [event for event in events if event.seq in wanted]
        self.counts["replayed"] += len(taken)
        return taken

    # -- reporting ------------------------------------------------------------------------------
    def positions(self) -> dict[str, int]:
        return self.cursors.positions()

    def stats(self) -> dict[str, int]:
        return {**self.counts, "gaps_open": self.cursors.open_gaps()}

    def close(self) -> None:
        self.client.close()
