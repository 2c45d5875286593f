"""``serve --cluster``: a Workflow Machine command for a process another member owns goes there.

The management API asks ``forward`` about each request frame before it decodes it. A request
naming a ``params.pid`` whose partition this member does not own is sent, **unchanged** (the
owner authenticates it, as if the client had called it), to the owner's API endpoint, marked
as forwarded so it is never forwarded again; the owner's reply bytes go back to the client as
they are. An owner that is unknown (the partition is changing hands) or does not answer within
``FORWARD_TIMEOUT_S`` gets the client a clear error in the normal envelope.
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
    """``Services.api_forward`` of a cluster member."""

    def __init__(self, owns: Callable[[int], bool], owner_api: Callable[[int], str | None],
                 pid_partition: Callable[[str], int], workers: int = 4) -> None:
        self._owns, self._owner_api, self._pid_partition = owns, owner_api, pid_partition
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
        return self._pool.submit(self._send, endpoint, frame, partition)

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
            log.warning("cluster: forwarding to %s failed: %s", endpoint, exc)
        finally:
            sock.close(linger=0)
        self.failed += 1
        return envelope.failure(Internal(
            f"the cluster member owning partition {partition} ({endpoint}) did not answer within "
            f"{FORWARD_TIMEOUT_S:.0f} s; try again (a member that stopped hands its partitions over within seconds)"))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
