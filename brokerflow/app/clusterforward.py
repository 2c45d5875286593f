"""A Workflow Machine command for a process another engine owns goes there: ``serve --cluster``'s
management API and HTTP doors, and ``serve --shards``' HTTP doors (shard 0).

The management API asks ``forward`` about each request frame before it decodes it. A request
naming a ``params.pid`` whose partition this member does not own is sent, **unchanged** (the
owner authenticates it, as if the client had called it), to the owner's API endpoint, marked
as forwarded so it is never forwarded again; the owner's reply bytes go back to the client as
they are. An owner that is unknown (the partition is changing hands) or does not answer within
``FORWARD_TIMEOUT_S`` gets the client a clear error in the normal envelope.

The HTTP doors hand it a management request frame built from the HTTP request
(``api.forwarding``), the caller's token in it; under ``serve --shards`` (where the API broker
routes the management API by pid already) only shard 0's HTTP doors use one, whose owners are
the sibling shards' APIs (``app.shardlink``).

Forwarding must never make the door slow for everyone: each queued request looks its owner up
again right before it is sent (a partition that changed hands meanwhile is ``CONFLICT`` "try
again" at once); an owner endpoint that did not answer is remembered for ``SUSPECT_S``, during
which requests to it fail at once with the same ``INTERNAL`` error and afterwards only one at a
time probes it; and beyond ``max_pending`` requests waiting or in flight for one owner the
answer is ``CONFLICT`` "busy, try again" at once, never an unbounded queue of timeouts (counted
per owner, so a dead one's flood does not refuse the requests for the live ones).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import zmq

from brokerflow.api import envelope
from brokerflow.api.broker import request_pid
from brokerflow.api.server import FORWARDED
from brokerflow.errors import Conflict, Internal

__all__ = ["Forwarder", "FORWARD_TIMEOUT_S", "SUSPECT_S"]

log = logging.getLogger("brokerflow.cluster")

FORWARD_TIMEOUT_S = 5.0
SUSPECT_S = 1.0  # an endpoint that timed out: its requests fail at once this long, then one probes it


class Forwarder:
    """``Services.api_forward`` and ``http_forward`` of a cluster member; ``http_forward`` of shard 0."""

    def __init__(self, owns: Callable[[int], bool], owner_api: Callable[[int], str | None],
                 pid_partition: Callable[[str], int], workers: int = 4, owner: str = "cluster member",
                 retry_hint: str = "a member that stopped hands its partitions over within seconds",
                 max_pending: int | None = None, timeout_s: float = FORWARD_TIMEOUT_S,
                 suspect_s: float = SUSPECT_S) -> None:
        self._owns, self._owner_api, self._pid_partition = owns, owner_api, pid_partition
        self._owner, self._retry_hint = owner, retry_hint  # the words of the "did not answer" error
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="brokerflow-forward")
        self._context = zmq.Context.instance()
        # Waiting or in flight for one owner endpoint: beyond this, "busy" at once (a queue of 5 s
        # timeouts helps nobody); per endpoint, so the queue is bounded by this times the owners.
        self.max_pending = max_pending if max_pending is not None else workers * 16
        self._timeout_s, self._suspect_s = timeout_s, suspect_s
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._suspect: dict[str, float] = {}  # endpoint -> monotonic time its requests fail at once until
        self._probing: set[str] = set()  # suspect endpoints one request is trying again
        self.forwarded = 0
        self.failed = 0
        self.busy = 0

    def forward(self, frame: bytes, pid: str | None = None) -> Future | None:
        """None: serve ``frame`` here; else a Future of the owner's reply (bytes) or an error envelope.

        ``pid``: the request's ``params.pid`` when the caller has it already (the HTTP doors);
        otherwise it is read from ``frame``.
        """
        if pid is None:
            pid = request_pid(frame)  # the API server let the frame in: its size is bounded there
        if pid is None:
            return None
        partition = self._pid_partition(pid)
        if self._owns(partition):
            return None
        endpoint = self._owner_api(partition)
        if endpoint is None:
            return self._failed(self._no_owner(partition, pid))
        with self._lock:
            refusal = self._refusal(partition, endpoint)
            if refusal is None:
                self._pending[endpoint] = self._pending.get(endpoint, 0) + 1
        if refusal is not None:
            return self._failed(refusal)
        try:
            return self._pool.submit(self._send, endpoint, frame, partition, pid)
        except RuntimeError:  # closed: the engine is stopping
            self._done(endpoint)
            return self._failed(Internal("this engine is stopping: send the command again to "
                                         "another door, or once it is back"))

    def _refusal(self, partition: int, endpoint: str) -> Exception | None:
        """Under the lock: why this request is answered at once rather than queued, if it is."""
        if self._fails_at_once(endpoint, time.monotonic()):
            return self._silent(partition, endpoint)
        pending = self._pending.get(endpoint, 0)
        if pending < self.max_pending:
            return None
        self.busy += 1
        if self.busy % 100 == 1:  # one line per hundred: a flood must not flood the log too
            log.warning("forwarding: %d requests already waiting for the %s at %s; refusing new ones (%d so far)",
                        pending, self._owner, endpoint, self.busy)
        return Conflict(f"this engine is busy forwarding {pending} requests to the {self._owner} owning partition "
                        f"{partition}: try again in a moment")

    def _fails_at_once(self, endpoint: str, now: float) -> bool:
        """Under the lock: ``endpoint`` timed out less than ``SUSPECT_S`` ago, or is being probed."""
        until = self._suspect.get(endpoint)
        return until is not None and (now < until or endpoint in self._probing)

    def _failed(self, error: Exception) -> Future:
        self.failed += 1
        done: Future = Future()
        done.set_result(envelope.failure(error))
        return done

    def _no_owner(self, partition: int, pid: str) -> Conflict:
        return Conflict(f"partition {partition} of process {pid[:64]!r} has no owner right now (it is changing "
                        "hands): try again in a few seconds")

    def _silent(self, partition: int, endpoint: str) -> Internal:
        return Internal(f"the {self._owner} owning partition {partition} ({endpoint}) did not answer within "
                        f"{self._timeout_s:.0f} s; try again ({self._retry_hint})")

    def _send(self, endpoint: str, frame: bytes, partition: int, pid: str) -> Any:
        try:
            return self._send_now(endpoint, frame, partition, pid)
        finally:
            self._done(endpoint)

    def _done(self, endpoint: str) -> None:
        with self._lock:
            left = self._pending.pop(endpoint, 1) - 1
            if left:
                self._pending[endpoint] = left

    def _send_now(self, endpoint: str, frame: bytes, partition: int, pid: str) -> Any:
        # It may have waited in the queue: the owner then may be another one, or gone, or silent.
        if self._owns(partition) or self._owner_api(partition) != endpoint:
            self.failed += 1
            return envelope.failure(self._no_owner(partition, pid))
        with self._lock:
            if self._fails_at_once(endpoint, time.monotonic()):
                self.failed += 1
                return envelope.failure(self._silent(partition, endpoint))
            probing = endpoint in self._suspect
            if probing:
                self._probing.add(endpoint)
        answered = False
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(endpoint)
            sock.send_multipart([b"", FORWARDED, frame])
            if sock.poll(int(self._timeout_s * 1000)):
                reply = sock.recv_multipart()
                answered = True
                self.forwarded += 1
                return reply[-1]
        except zmq.ZMQError as exc:
            log.warning("forwarding to the %s at %s failed: %s", self._owner, endpoint, exc)
        finally:
            sock.close(linger=0)
            with self._lock:
                if probing:
                    self._probing.discard(endpoint)
                if answered:
                    self._suspect.pop(endpoint, None)
                else:
                    self._suspect[endpoint] = time.monotonic() + self._suspect_s
        log.warning("forwarding: the %s at %s did not answer within %.0f s; its requests fail at once for %.0f s",
                    self._owner, endpoint, self._timeout_s, self._suspect_s)
        self.failed += 1
        return envelope.failure(self._silent(partition, endpoint))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
