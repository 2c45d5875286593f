"""Read what a ZeroMQ socket already holds without letting go of the GIL between frames.

pyzmq releases the GIL around every ``zmq_msg_recv``, even a non-blocking one that returns in
a microsecond. Next to the engine's busy actor threads each release hands the GIL away and the
ingress waits up to a switch interval (5 ms) to get it back, so a poll of 2000 two-frame
messages could cost 4000 hand-offs. Here the same libzmq that pyzmq loaded is called through
``ctypes.PyDLL``, which keeps the GIL for the call: with ``ZMQ_DONTWAIT`` the call never
blocks, so holding the GIL is harmless and a whole poll's worth of frames is read in one go.

Where the library cannot be found in the process (not Linux, pyzmq built another way), the
drain falls back to ``recv_multipart``: the same frames, only slower under contention.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Callable

import zmq

Drain = Callable[[int], list[list[bytes]]]

_LIB: ctypes.PyDLL | None | bool = False  # False: not looked up yet; None: unavailable


def _mapped_libzmq() -> str | None:
    """The path of the libzmq mapped into this process (the very copy pyzmq's sockets use).

    None when there is none or more than one: with two copies loaded, which one owns pyzmq's
    sockets is not known, and a socket handed to the other copy's functions could crash.
    """
    paths = set()
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6 and "/libzmq" in parts[5]:
                    paths.add(parts[5].strip())
    except OSError:
        return None
    return paths.pop() if len(paths) == 1 else None


def _library() -> ctypes.PyDLL | None:
    global _LIB
    if _LIB is False:
        _LIB = None
        path = _mapped_libzmq()
        if path is not None:
            try:
                lib = ctypes.PyDLL(path)
                # No argtypes: every argument is passed as a ready ctypes object, which ctypes
                # hands over as it is (converting Python ints each call costs a third more).
                for name in ("zmq_recv", "zmq_getsockopt", "zmq_errno"):
                    getattr(lib, name).restype = ctypes.c_int
                _LIB = lib
            except (OSError, AttributeError):
                _LIB = None
    return _LIB  # type: ignore[return-value]


def open_drain(sock: zmq.Socket, max_bytes: int, raw: bool = True) -> Drain:
    """``drain(limit)``: up to ``limit`` queued messages (lists of frames) without blocking.

    Only the thread that owns ``sock`` may call it, and never after the socket was closed.
    Frames are at most ``max_bytes`` long (``zmq.MAXMSGSIZE`` refuses longer ones); one that
    still were longer would come back cut to ``max_bytes + 1`` bytes, which the codec refuses
    as too large. ``raw=False`` forces pyzmq's ``recv_multipart`` (what the fallback uses).
    """
    lib = _library() if raw else None
    if lib is None or not _owns(lib, sock):
        return _pyzmq_drain(sock)
    return _raw_drain(lib, sock, max_bytes)


def _owns(lib: ctypes.PyDLL, sock: zmq.Socket) -> bool:
    """The library sees ``sock`` as the socket pyzmq says it is (same copy, same ABI)."""
    kind, size = ctypes.c_int(-1), ctypes.c_size_t(ctypes.sizeof(ctypes.c_int))
    rc = lib.zmq_getsockopt(ctypes.c_void_p(sock.underlying), ctypes.c_int(zmq.TYPE),
                            ctypes.byref(kind), ctypes.byref(size))
    return rc == 0 and kind.value == sock.type


def _pyzmq_drain(sock: zmq.Socket) -> Drain:
    recv = sock.recv_multipart

    def drain(limit: int) -> list[list[bytes]]:
        messages: list[list[bytes]] = []
        for _ in range(limit):
            try:
                messages.append(recv(zmq.NOBLOCK))
            except zmq.Again:
                break
        return messages

    return drain


def _raw_drain(lib: ctypes.PyDLL, sock: zmq.Socket, max_bytes: int) -> Drain:
    capacity = max_bytes + 1
    buffer = ctypes.create_string_buffer(capacity)
    view = memoryview(buffer).cast("B")
    c_capacity, c_dontwait, c_rcvmore = ctypes.c_size_t(capacity), ctypes.c_int(zmq.DONTWAIT), ctypes.c_int(zmq.RCVMORE)
    more, size = ctypes.c_int(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_int))
    more_ref, size_ref = ctypes.byref(more), ctypes.byref(size)
    recv, getsockopt, zmq_errno = lib.zmq_recv, lib.zmq_getsockopt, lib.zmq_errno
    eagain, eintr = errno.EAGAIN, errno.EINTR

    def drain(limit: int) -> list[list[bytes]]:
        if sock.closed:
            raise zmq.ZMQError(errno.ENOTSOCK)
        handle = ctypes.c_void_p(sock.underlying)
        messages: list[list[bytes]] = []
        append = messages.append
        for _ in range(limit):
            frames: list[bytes] = []
            while True:
                length = recv(handle, buffer, c_capacity, c_dontwait)
                if length < 0:
                    code = zmq_errno()
                    if code == eintr:
                        continue
                    if code != eagain:
                        raise zmq.ZMQError(code)
                    # The frames of a message arrive together, so this is the end of the queue.
                    if frames:
                        append(frames)
                    return messages
                frames.append(view[:length if length < capacity else capacity].tobytes())
                if getsockopt(handle, c_rcvmore, more_ref, size_ref) != 0:
                    raise zmq.ZMQError(zmq_errno())
                if not more.value:
                    break
            append(frames)
        return messages

    return drain
