"""The management API in front of ``serve --shards``: one public ROUTER, one DEALER per shard.

A client sees one API. Each request goes to one shard, unchanged (its routing envelope grows by
the DEALER's identity on the shard's ROUTER, which ``api.server`` keeps and sends back), and the
reply comes back by the client's identity. A request naming a Workflow Machine ``pid`` goes to
the shard that owns the pid's partition (a shard only creates pids it owns, so a process lives
in one shard); everything else goes round-robin, since any shard can answer it.

The request is parsed here only to find the pid, cheaply and defensively: a frame that does
not parse, or parses to anything but a map with a ``params.pid`` string, goes round-robin and
the shard answers whatever is wrong with it, in the caller's encoding, as one engine would.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import msgpack
import zmq

from brokerflow.api.framing import wants_json
from brokerflow.api.server import HARD_CAP_FACTOR, READ_BATCH, _recv_request, _split
from brokerflow.workflow.partitions import partition_of, pid_key, shard_of

log = logging.getLogger(__name__)


def request_pid(frame: bytes, max_bytes: int | None = None) -> str | None:
    """The ``params.pid`` of a request frame, or None when there is none or it does not parse.

    ``max_bytes`` is the engine's ``max_frame_bytes``: a bigger frame is refused by whoever
    serves it, so it is not parsed here. Anything up to it is, however big its ``input``: a
    command for another engine's process served here would only be refused ``CONFLICT``.
    """
    if max_bytes is not None and len(frame) > max_bytes:
        return None
    try:
        request: Any = json.loads(frame) if wants_json(frame) else msgpack.unpackb(frame, raw=False)
    except Exception:  # noqa: BLE001 - any malformed frame: the shard answers it
        return None
    params = request.get("params") if isinstance(request, dict) else None
    pid = params.get("pid") if isinstance(params, dict) else None
    return pid if isinstance(pid, str) and pid else None


class ApiBroker:
    """Forwards requests from ``bind`` to ``shard_endpoints`` and replies back; ``run`` on one thread."""

    def __init__(self, bind: str, shard_endpoints: list[str], partitions: int, max_frame_bytes: int,
                 context: zmq.Context) -> None:
        self.partitions = partitions
        self.max_frame_bytes = max_frame_bytes
        self.front = context.socket(zmq.ROUTER)
        self.front.setsockopt(zmq.LINGER, 0)
        self.front.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes * HARD_CAP_FACTOR + 65536)
        self.front.bind(bind)
        self.endpoint = self.front.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.backs = []
        for endpoint in shard_endpoints:
            back = context.socket(zmq.DEALER)
            back.setsockopt(zmq.LINGER, 0)
            back.connect(endpoint)
            self.backs.append(back)
        self._next = 0
        self.forwarded = 0
        self.dropped = 0  # requests no shard could queue (all of a shard's queue full): the client times out

    def shard_for(self, body: list[bytes]) -> int:
        pid = request_pid(body[0], self.max_frame_bytes) if len(body) == 1 else None
        if pid is not None:
            return shard_of(partition_of(pid_key(pid), self.partitions), len(self.backs))
        self._next = (self._next + 1) % len(self.backs)
        return self._next

    def run(self, stop: threading.Event, timeout_ms: int = 100) -> None:
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        for back in self.backs:
            poller.register(back, zmq.POLLIN)
        while not stop.is_set():
            for sock, _ in poller.poll(timeout_ms):
                try:
                    self._forward_requests() if sock is self.front else self._forward_replies(sock)
                except Exception:  # noqa: BLE001 - one bad message must not stop the API
                    log.exception("API broker: forwarding failed")
        self.close()

    def _forward_requests(self) -> None:
        for _ in range(READ_BATCH):
            try:
                frames, dropped = _recv_request(self.front)
            except zmq.Again:
                return
            if dropped:
                frames.append(b"")  # too many frames: the shard answers BAD_REQUEST, as one engine does
            shard = self.shard_for(_split(frames)[1])
            try:
                self.backs[shard].send_multipart(frames, zmq.NOBLOCK)
                self.forwarded += 1
            except zmq.Again:
                self.dropped += 1

    def _forward_replies(self, back: zmq.Socket) -> None:
        for _ in range(READ_BATCH):
            try:
                frames = back.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self.front.send_multipart(frames, zmq.NOBLOCK)
            except zmq.ZMQError:  # the client went away (ROUTER drops unroutable replies quietly)
                pass

    def close(self) -> None:
        for sock in (self.front, *self.backs):
            sock.close(linger=0)
