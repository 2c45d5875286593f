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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import zmq

from brokerflow.api import envelope
from brokerflow.api.broker import request_pid
from brokerflow.api.server import FORWARDED
from brokerflow.errors import Conflict, Internal

__all__ = ["Forwarder", "FORWARD_TIMEOUT_S"]

log = logging.getLogger("brokerflow.cluster")

FORWARD_TIMEOUT_S = 5.0


class Forwarder:
    """``Services.api_forward`` and ``http_forward`` of a cluster member; ``http_forward`` of shard 0."""

    def __init__(self, owns: Callable[[int], bool], owner_api: Callable[[int], str | None],
                 pid_partition: Callable[[str], int], workers: int = 4, owner: str = "cluster member",
                 retry_hint: str = "a member that stopped hands its partitions over within seconds") -> None:
        self._owns, self._owner_api, self._pid_partition = owns, owner_api, pid_partition
        self._owner, self._retry_hint = owner, retry_hint  # the words of the "did not answer" error
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="brokerflow-forward")
        self._context = zmq.Context.instance()
        self.forwarded = 0
        self.failed = 0

    def forward(self, frame: bytes) -> Future | None:
        """None: serve ``frame`` here; else a Future of the owner's reply (bytes) or an error envelope."""
        pid = request_pid(frame)
        if pid is None:
            return None
        partition = self._pid_partition(pid)
        if self._owns(partition):
            return None
        endpoint = self._owner_api(partition)
        if endpoint is None:
            self.failed += 1
            done: Future = Future()
            done.set_result(envelope.failure(Conflict(
                f"partition {partition} of process {pid[:64]!r} has no owner right now (it is changing hands): "
                "try again in a few seconds")))
            return done
        try:
            return self._pool.submit(self._send, endpoint, frame, partition)
        except RuntimeError:  # closed: the engine is stopping
            done = Future()
            done.set_result(envelope.failure(Internal("this engine is stopping: send the command again to "
                                                      "another door, or once it is back")))
            return done

    def _send(self, endpoint: str, frame: bytes, partition: int) -> Any:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(endpoint)
            sock.send_multipart([b"", FORWARDED, frame])
            if sock.poll(int(FORWARD_TIMEOUT_S * 1000)):
                reply = sock.recv_multipart()
                self.forwarded += 1
                return reply[-1]
        except zmq.ZMQError as exc:
            log.warning("forwarding to the %s at %s failed: %s", self._owner, endpoint, exc)
        finally:
            sock.close(linger=0)
        self.failed += 1
        return envelope.failure(Internal(
            f"the {self._owner} owning partition {partition} ({endpoint}) did not answer within "
            f"{FORWARD_TIMEOUT_S:.0f} s; try again ({self._retry_hint})"))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
