"""The management API on a ZeroMQ ROUTER socket.

ROUTER rather than REP: a REQ client sees no difference (its routing envelope is kept and sent
back), but a REP socket must answer each request before it reads the next, so one slow
command (a process step waiting for its mailbox) would stall every client. Here a handler may
answer with a ``Future``; the server goes on reading, and sends the reply when the Future
completes.

Only the server thread touches the ROUTER socket. A completing Future (on whatever thread)
queues its reply and writes one byte to a socketpair the poller also watches, which wakes
the loop to send it — unless a wake-up is already on its way (``_wake_armed``), so a burst of
replies costs one wake-up, not one each, or it completes on the loop's own thread, which sends
it before it polls again.

Everything read in one go is one ``Burst``: process commands run on this thread and their
states are committed together when the burst is served, then answered (one transaction and no
thread hand-off per command; see ``actors.processes``).
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq

from brokerflow.api import envelope
from brokerflow.api.dispatcher import Dispatcher
from brokerflow.api.framing import decode_request, encode_reply, wants_json
from brokerflow.api.services import Burst
from brokerflow.bus import multipart_sender
from brokerflow.errors import BadRequest

log = logging.getLogger(__name__)

FORWARDED = b"brokerflow-forwarded"  # a frame before the request: another member sent it; never forward it again
READ_BATCH = 256  # requests read per poll_once before completed replies get their turn
HARD_CAP_FACTOR = 4  # frames above this many times the cap drop the peer instead of a reply
_MORE, _LAST = int(zmq.SNDMORE | zmq.NOBLOCK), int(zmq.NOBLOCK)  # plain ints: enum flags cost per frame


class ApiServer:
    def __init__(self, bind_endpoint: str, dispatcher: Dispatcher, max_frame_bytes: int,
                 context: zmq.Context | None = None, hold_gil: bool = True,
                 forward: Callable[[bytes], Future | None] | None = None) -> None:
        self._dispatcher = dispatcher
        self._forward = forward  # serve --cluster: requests for processes another member owns go there
        self._max_frame_bytes = max_frame_bytes
        self._own_context = context is None
        self._context = context or zmq.Context()
        self._sock = self._context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        # A frame over the cap still gets a BAD_REQUEST; only a far bigger one (a memory
        # attack rather than a mistake) makes ZeroMQ drop the peer before we ever see it.
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes * HARD_CAP_FACTOR + 65536)
        self._sock.bind(bind_endpoint)
        self.endpoint: str = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        # Replies go out with the GIL held (bus.multipart_sender), as the outbound PUB's messages do: pyzmq
        # releases it for each frame, and beside busy threads each release waits to get it back.
        self._send_frames = (multipart_sender(self._sock) if hold_gil else None) or self._pyzmq_send
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._completed: collections.deque[tuple[list[bytes], bool, dict[str, Any]]] = collections.deque()
        self._wake_armed = False  # a wake byte was written and the loop has not taken the replies yet
        self._poller = zmq.Poller()
        self._poller.register(self._sock, zmq.POLLIN)
        self._wake_fd = self._wake_r.fileno()  # zmq.Poller reports plain sockets by fd
        self._poller.register(self._wake_fd, zmq.POLLIN)
        self._closed = False
        self._loop_thread: int | None = None  # the thread serving the socket (it needs no wake-up)
        self.pending = 0  # replies still waiting for their Future

    @property
    def holds_gil(self) -> bool:
        """Are replies sent without releasing the GIL (the fast path)?"""
        return self._send_frames != self._pyzmq_send

    # -- the loop -------------------------------------------------------------------------

    def poll_once(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for work; serve what is there. Returns replies sent."""
        self._loop_thread = threading.get_ident()
        ready = dict(self._poller.poll(timeout_ms))
        if self._wake_fd in ready:
            self._drain_wake()
            # Disarmed after the drain and before taking the replies: a reply queued from here on
            # writes a new byte; one queued before it is taken below. Disarming first would let a
            # byte written in between be drained while the flag stays set: a lost wake-up.
            self._wake_armed = False
        sent = self._send_completed()
        if self._sock in ready:
            sock, burst = self._sock, Burst()
            try:
                for _ in range(READ_BATCH):  # EVENTS, not recv until zmq.Again: an exception per poll costs
                    if not sock.get(zmq.EVENTS) & zmq.POLLIN:
                        break
                    frames, dropped = _recv_request(sock)
                    sent += self._serve(frames, burst, dropped)
            finally:
                burst.close()  # commits and answers the burst's process commands (replies queued)
        return sent + self._send_completed()

    def run(self, stop_event: threading.Event, timeout_ms: int = 100) -> None:
        while not stop_event.is_set():
            try:
                self.poll_once(timeout_ms)
            except zmq.ContextTerminated:
                return
            except Exception:  # the loop must outlive any single bad request
                log.exception("management API loop step failed; going on")

    def close(self) -> None:
        """Close the socket (call from the server thread, or after ``run`` returned)."""
        if self._closed:
            return
        self._closed = True
        self._sock.close(linger=0)
        self._wake_r.close()
        self._wake_w.close()
        if self._own_context:
            self._context.term()

    # -- one request ----------------------------------------------------------------------

    def _serve(self, frames: list[bytes], burst: Burst | None = None, dropped: int = 0) -> int:
        routing, body = _split(frames)
        if not routing:
            return 0  # ROUTER always prefixes the peer identity; nothing to answer to
        if len(body) == 2 and body[0] == FORWARDED:
            body = body[1:]  # from another member: served here, whoever owns it now
        elif self._forward is not None and len(body) == 1 and not dropped:
            try:
                forwarded = self._forward(body[0])
            except Exception:  # noqa: BLE001 - a forwarding fault must cost the request its forwarding only
                log.exception("management API: forwarding a request failed; serving it here")
                forwarded = None
            if forwarded is not None:
                as_json = wants_json(body[0])
                self.pending += 1
                forwarded.add_done_callback(lambda fut: self._complete(routing, as_json, fut))
                return 0
        frame = body[0] if body else b""
        as_json = wants_json(frame)  # a refused request is answered in its first frame's encoding
        try:
            if len(body) != 1 or dropped:
                raise BadRequest(f"expected one frame after the routing envelope, got {len(body) + dropped}")
            request, as_json = decode_request(frame, self._max_frame_bytes)
            reply = self._dispatcher.handle(request, burst=burst)
        except Exception as exc:
            reply = envelope.failure(exc)
        if isinstance(reply, Future):
            self.pending += 1
            reply.add_done_callback(lambda fut: self._complete(routing, as_json, fut))
            return 0
        return self._send(routing, as_json, reply)

    def _complete(self, routing: list[bytes], as_json: bool, fut: Future[dict[str, Any]]) -> None:
        """Runs on the thread that completed ``fut``: queue the reply, wake the server thread."""
        try:
            reply = fut.result()
        except BaseException as exc:  # the dispatcher's Futures carry envelopes, but be safe
            reply = envelope.failure(exc)
        self._completed.append((routing, as_json, reply))
        if self._wake_armed or threading.get_ident() == self._loop_thread:
            return  # the loop has a wake byte to come to, or is the caller: it sends before polling
        self._wake_armed = True
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake (buffer full) or closed

    def _drain_wake(self) -> None:
        """One read: the poller said there are bytes; any left over just wake the next poll."""
        try:
            self._wake_r.recv(4096)
        except (BlockingIOError, OSError):
            pass

    def _send_completed(self) -> int:
        sent = 0
        while self._completed:
            routing, as_json, reply = self._completed.popleft()
            self.pending -= 1
            sent += self._send(routing, as_json, reply)
        return sent

    def _send(self, routing: list[bytes], as_json: bool, reply: dict[str, Any] | bytes) -> int:
        try:
            data = reply if isinstance(reply, bytes) else encode_reply(reply, as_json)
        except Exception as exc:  # e.g. an int too big for msgpack in a handler's body
            data = encode_reply(envelope.failure(exc), as_json)
        try:
            self._send_frames([*routing, data])
        except zmq.Again:
            log.warning("reply dropped: the client's queue is full")
            return 0
        return 1

    def _pyzmq_send(self, frames: list[bytes]) -> None:
        """Frame by frame as ``send_multipart`` does, without its per-call checks."""
        send, end = self._sock.send, len(frames) - 1
        for index, frame in enumerate(frames):
            send(frame, _LAST if index == end else _MORE)


KEPT_FRAMES = 8  # identities, delimiter and the request: more than any well-formed request has


def _recv_request(sock: zmq.Socket) -> tuple[list[bytes], int]:
    """One message frame by frame: ``(the first KEPT_FRAMES frames, how many more were dropped)``.

    ``MAXMSGSIZE`` caps each frame, not the message, so a client may send thousands of
    max-size frames at once; ``recv_multipart`` would copy them all into Python. Frames past
    ``KEPT_FRAMES`` are received and let go one at a time, and the request is answered
    ``BAD_REQUEST`` (it cannot be a one-frame request).
    """
    frames = [sock.recv(zmq.NOBLOCK)]
    dropped = 0
    while sock.getsockopt(zmq.RCVMORE):
        frame = sock.recv(zmq.NOBLOCK, copy=False)  # a zmq.Frame: no bytes copy of a dropped one
        if len(frames) < KEPT_FRAMES:
            frames.append(frame.bytes)
        else:
            dropped += 1
    return frames, dropped


def _split(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Routing envelope (identities up to and including the empty delimiter) and the body.

    REQ clients send ``[identity, b"", request]``; a DEALER may send ``[identity, request]``
    with no delimiter, in which case the envelope is the identity alone.
    """
    if not frames:
        return [], []
    for index, frame in enumerate(frames[1:], start=1):
        if frame == b"":
            return frames[: index + 1], frames[index + 1:]
    return frames[:1], frames[1:]
