"""``brokerflow relay``: a journaling relay between a plain publisher and the engines (PROTOCOL §7).

A trading engine's PUB socket knows nothing of replay. The relay sits next to it: a SUB socket
takes everything it publishes, each burst is checked and stamped (``bus._stamp``), committed
to the journal in one transaction, and only then published on the relay's own PUB socket. A
replay endpoint (``bus.replay_server``) serves the journal from a thread of its own, and a
trimmer thread applies the retention every ``trim_interval_s``; each thread has its own
journal connection (SQLite connections are per thread).

One burst: wait for the first message, then take what is already queued (up to ``batch_max``)
without waiting, so under load the journal commits thousands of events per transaction and at
a trickle each event goes out at once. If the journal cannot be written (disk full, locked),
the burst is held and retried with a growing pause; nothing more is read meanwhile, so the SUB
socket's high-water mark (and then the upstream PUB) holds the backlog, as the engine's
ingress does. Nothing is published that is not committed.

The frame-size guard is the ingress's: ``zmq.MAXMSGSIZE`` of ``FRAME_CAP_FACTOR`` ×
``max_frame_bytes`` drops a connection that sends more (an ``--from`` endpoint is dialled
again), anything between is counted as malformed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from brokerflow import clock
from brokerflow.bus import _libzmq
from brokerflow.bus._drain import open_drain
from brokerflow.bus._loop import poll_until
from brokerflow.bus._stamp import Stamper
from brokerflow.bus._throttle import LogThrottle, held_note
from brokerflow.bus._xpub import MAX_SUBSCRIPTION_BYTES
from brokerflow.bus.journal import Journal
from brokerflow.bus.replay_server import ReplayServer

__all__ = ["COUNTERS", "Relay", "RelaySettings"]

log = logging.getLogger("brokerflow.relay")

FRAME_CAP_FACTOR = 4
WIRE_LOG_EVERY_S, WIRE_LOG_BURST = 10.0, 10
RETRY_MAX_S = 2.0
COUNTERS = ("received", "malformed", "unnamed", "stamped", "journaled", "duplicates", "published",
            "journal_failures", "disconnects")


@dataclass(frozen=True)
class RelaySettings:
    """What ``brokerflow relay`` was told (built once by the CLI)."""

    journal: str
    from_connect: tuple[str, ...] = ()
    from_bind: tuple[str, ...] = ()
    publish_bind: tuple[str, ...] = ()
    publish_connect: tuple[str, ...] = ()
    replay_bind: str | None = None
    source: str | None = None
    retain_events: int = 10_000_000
    retain_hours: float = 168.0
    synchronous: str = "NORMAL"
    max_frame_bytes: int = 1_048_576
    hwm: int = 1_000_000
    batch_max: int = 5000
    trim_interval_s: float = 60.0
    journal_busy_ms: int = 10_000  # how long an append waits for the write lock before it counts as failed


class Relay:
    """The relay's sockets, journal and threads. ``run(stop)`` until stopped, then ``close()``."""

    def __init__(self, settings: RelaySettings, context: zmq.Context | None = None) -> None:
        self.settings = settings
        self._owns_context = context is None
        self._context = context if context is not None else zmq.Context()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._wire_log = LogThrottle(WIRE_LOG_EVERY_S, WIRE_LOG_BURST)
        self._fail_log = LogThrottle(WIRE_LOG_EVERY_S)
        self._held: tuple[list, list[list[bytes]]] | None = None  # a burst the journal refused
        self._retry_s = 0.0
        self._threads: list[threading.Thread] = []
        self._thread_stop = threading.Event()
        self._sub = self._pub = self._monitor = None
        self.replay: ReplayServer | None = None
        self._journal = Journal(settings.journal, settings.synchronous, busy_timeout_ms=settings.journal_busy_ms)
        try:
            self._open_sockets()
            if settings.replay_bind:
                self.replay = ReplayServer(settings.replay_bind, settings.journal, self._context)
        except BaseException:
            self.close()
            raise
        self._stamper = Stamper(settings.source, self._journal.last_seq, settings.max_frame_bytes)
        self._drain = open_drain(self._sub, settings.max_frame_bytes)
        self._send = _libzmq.multipart_sender(self._pub) or self._pub.send_multipart

    def _open_sockets(self) -> None:
        settings = self.settings
        self._sub = sub = self._context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, settings.hwm)
        sub.setsockopt(zmq.MAXMSGSIZE, settings.max_frame_bytes * FRAME_CAP_FACTOR)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.from_endpoints = _attach(sub, settings.from_bind, settings.from_connect)
        self._monitor = sub.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._connects = {endpoint.encode(): endpoint for endpoint in settings.from_connect}
        self._pub = pub = self._context.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 1000)
        pub.setsockopt(zmq.SNDHWM, settings.hwm)
        pub.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)  # what a PUB takes in is subscriptions
        self.publish_endpoints = _attach(pub, settings.publish_bind, settings.publish_connect)

    def stats(self) -> dict[str, int]:
        return dict(self._counts)

    # -- the loop ------------------------------------------------------------------------------
    def poll_once(self, timeout_ms: int) -> int:
        """One burst: wait up to ``timeout_ms``, journal and publish what is queued; return messages read."""
        self._check_connections()
        if self._held is not None:
            self._commit_and_publish(*self._held)
            if self._held is not None:
                time.sleep(min(self._retry_s, timeout_ms / 1000))
            return 0
        if not self._sub.poll(timeout_ms, zmq.POLLIN):
            return 0
        messages = self._drain(self.settings.batch_max)
        burst = self._stamper.burst(messages)
        counts = self._counts
        counts["received"] += len(messages)
        counts["stamped"] += burst.stamped
        if burst.malformed or burst.unnamed:
            self._log_dropped(burst.malformed, burst.unnamed, burst.first_reason)
        self._commit_and_publish(burst.rows, burst.frames)
        return len(messages)

    def _commit_and_publish(self, rows: list, frames: list[list[bytes]]) -> None:
        try:
            inserted = self._journal.append(rows, clock.now_ms())
        except Exception as exc:  # noqa: BLE001 - sqlite3.Error, disk full: hold the burst, retry
            self._held = (rows, frames)
            self._retry_s = min(RETRY_MAX_S, max(0.05, self._retry_s * 2))
            self._counts["journal_failures"] += 1
            held = self._fail_log.ready()
            if held is not None:
                log.error("relay: the journal refused %d events (%s: %s); holding them, not reading until it "
                          "takes them%s", len(rows), type(exc).__name__, exc, held_note(held))
            return
        self._held, self._retry_s = None, 0.0
        self._counts["journaled"] += inserted
        self._counts["duplicates"] += len(rows) - inserted
        send = self._send
        for message in frames:
            try:
                send(message)
            except zmq.Again:
                continue  # past the PUB's high-water mark: subscribers recover it by replay
        self._counts["published"] += len(frames)

    def _log_dropped(self, malformed: int, unnamed: int, reason: str) -> None:
        self._counts["malformed"] += malformed
        self._counts["unnamed"] += unnamed
        held = self._wire_log.ready()
        if held is None:
            return
        if malformed:
            log.warning("relay: %d malformed message(s) dropped, e.g. %s%s", malformed, reason, held_note(held))
        if unnamed:
            log.warning("relay: %d event(s) without a source dropped: start the relay with --source NAME to "
                        "stamp them%s", unnamed, held_note(held))

    def _check_connections(self) -> None:
        """Count dropped upstream connections; dial an ``--from`` endpoint again (libzmq does not
        after a protocol error such as a frame over MAXMSGSIZE)."""
        while self._monitor.get(zmq.EVENTS) & zmq.POLLIN:
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._counts["disconnects"] += 1
            endpoint = self._connects.get(frames[1] if len(frames) > 1 else b"")
            if endpoint is not None:
                try:
                    self._sub.disconnect(endpoint)
                except zmq.ZMQError:
                    pass  # the session is gone already
                self._sub.connect(endpoint)

    # -- threads -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the replay server's and the trimmer's threads."""
        if self.replay is not None:
            self._spawn("relay-replay", self.replay.run)
        self._spawn("relay-trim", self._trim_loop)
        name = self.settings.source
        log.info("relay: from %s -> journal %s -> publish %s; replay %s; stamping %s",
                 ", ".join(self.from_endpoints) or "-", self.settings.journal,
                 ", ".join(self.publish_endpoints) or "-", self.replay.endpoint if self.replay else "off",
                 f"source {name!r}" if name else "off (events without a source are dropped)")

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self._thread_stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _trim_loop(self, stop: threading.Event) -> None:
        journal = Journal(self.settings.journal, self.settings.synchronous)
        keep_ms = int(self.settings.retain_hours * 3_600_000)
        try:
            while True:
                try:
                    deleted = journal.trim(self.settings.retain_events, keep_ms, clock.now_ms())
                    if deleted:
                        log.info("relay: trimmed %d journaled events past the retention", deleted)
                except Exception:  # noqa: BLE001 - retried at the next interval
                    log.exception("relay: could not trim the journal")
                if stop.wait(self.settings.trim_interval_s):
                    return
        finally:
            journal.close()

    def run(self, stop: threading.Event) -> None:
        """``start()``, then bursts until ``stop`` is set; the caller calls ``close()``."""
        self.start()
        poll_until(stop, self.poll_once, lambda: self._sub.closed, log, "relay: poll failed")

    def close(self) -> None:
        """Stop the threads, close sockets and journal connections."""
        if self._held is not None:
            log.error("relay: stopping with %d events the journal never took: they are lost", len(self._held[0]))
        self._thread_stop.set()
        for thread in self._threads:
            thread.join(5)
        if self.replay is not None:
            self.replay.close()
        if self._monitor is not None and not self._monitor.closed:
            if self._sub is not None and not self._sub.closed:
                self._sub.disable_monitor()
            self._monitor.close(linger=0)
        for sock in (self._sub, self._pub):
            if sock is not None and not sock.closed:
                sock.close()
        self._journal.close()
        if self._owns_context and not self._context.closed:
            self._context.term()


def _attach(sock: zmq.Socket, binds: tuple[str, ...], connects: tuple[str, ...]) -> list[str]:
    """Bind and connect; the endpoints as really bound (port 0 resolved), then the connected ones."""
    endpoints = []
    for endpoint in binds:
        sock.bind(endpoint)
        endpoints.append(sock.getsockopt(zmq.LAST_ENDPOINT).decode("ascii"))
    for endpoint in connects:
        sock.connect(endpoint)
        endpoints.append(endpoint)
    return endpoints
