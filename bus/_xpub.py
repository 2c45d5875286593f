"""The PUB side shared by ``Publisher`` and ``Outbound``: an XPUB socket that reports subscribers.

ZeroMQ PUB drops every message sent before a subscriber's subscription has reached it (the
"slow joiner"). An XPUB socket is wire-compatible with PUB for SUB peers and, unlike PUB, hands
the subscriptions up to the application, so a sender can wait until a subscriber is really
listening instead of sleeping and hoping.

What an XPUB receives is the subscribers' subscriptions, and any peer can send one of any size:
libzmq would read it whole and keep its prefix in the socket's subscription trie. A subscription
is a flag byte and a topic prefix (topics are at most 128 bytes), so ``MAX_SUBSCRIPTION_BYTES``
caps what the socket takes; a peer that sends more is disconnected by libzmq before the frame is
buffered.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext

import zmq

MAX_SUBSCRIPTION_BYTES = 1024


def open_xpub(context: zmq.Context, endpoint: str, bind: bool, hwm: int, linger_ms: int) -> zmq.Socket:
    sock = context.socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.LINGER, linger_ms)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscription, not only the first
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
    try:
        if bind:
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
    except zmq.ZMQError:
        sock.close(linger=0)
        raise
    return sock


def last_endpoint(sock: zmq.Socket) -> str:
    return sock.getsockopt(zmq.LAST_ENDPOINT).decode("ascii")


class SubscriptionCounter:
    """Counts subscribe messages an XPUB socket received (one per subscriber and prefix)."""

    def __init__(self) -> None:
        self.subscriptions = 0

    def drain(self, sock: zmq.Socket, timeout_ms: int = 0) -> int:
        """Read pending (un)subscription messages, waiting up to ``timeout_ms`` for the first."""
        if timeout_ms > 0 and not sock.poll(timeout_ms, zmq.POLLIN):
            return self.subscriptions
        while True:
            try:
                message = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return self.subscriptions
            if message[:1] == b"\x01":
                self.subscriptions += 1

    def wait(self, sock: zmq.Socket, subscribers: int, timeout_s: float,
             lock: AbstractContextManager | None = None, step_ms: int = 20) -> bool:
        """True once at least ``subscribers`` subscriptions arrived, False after ``timeout_s``.

        ``lock`` (held only around each short step) serializes access to a shared socket.
        """
        guard = lock if lock is not None else nullcontext()
        deadline = time.monotonic() + timeout_s
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            with guard:
                if self.drain(sock, max(0, min(step_ms, left_ms))) >= subscribers:
                    return True
            if left_ms <= 0:
                return False


class XpubOwner:
    """What the publisher library and the outbound bus share once their XPUB socket is open.

    Subclasses set ``_sock``, ``_lock``, ``_subs``, ``_context`` and ``_owns_context``.
    """

    _sock: zmq.Socket
    _lock: threading.Lock
    _subs: SubscriptionCounter
    _context: zmq.Context
    _owns_context: bool

    def wait_subscribed(self, timeout_s: float = 5.0, subscribers: int = 1) -> bool:
        """Block until ``subscribers`` subscriptions have reached this socket; False on timeout."""
        return self._subs.wait(self._sock, subscribers, timeout_s, lock=self._lock)

    def close(self) -> None:
        with self._lock:
            if not self._sock.closed:
                self._sock.close()
        if self._owns_context and not self._context.closed:
            self._context.term()
