"""Read what a ZeroMQ socket already holds without letting go of the GIL between frames.

pyzmq releases the GIL around every ``zmq_msg_recv``, even a non-blocking one that returns in
a microsecond. Next to the engine's busy actor threads each release hands the GIL away and the
ingress waits up to a switch interval (5 ms) to get it back, so a poll of 2000 two-frame
messages could cost 4000 hand-offs. Here the same libzmq that pyzmq loaded is called through
``ctypes.PyDLL``, which keeps the GIL for the call: with ``ZMQ_DONTWAIT`` the call never
blocks, so holding the GIL is harmless and a whole poll's worth of frames is read in one go.

Where the library cannot be found in the process (not Linux, pyzmq built another way), the
drain falls back to pyzmq's ``recv``: the same frames, only slower under contention.

A bus message has two frames, but ``zmq.MAXMSGSIZE`` caps each frame, not the message: a peer
can send thousands of maximum-size frames in one message, and libzmq holds a message whole
until it is read. The drain cannot prevent that, but it does not make it worse: frames past the
second are received without being copied (libzmq frees each as it goes) and the message comes
back as its first two frames and ``EXTRA_FRAMES``, which the codec refuses as malformed.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Callable

import zmq

from brokerflow.bus import _libzmq

Drain = Callable[[int], list[list[bytes]]]
# The third and last element of a message that had more than two frames, in place of the rest.
EXTRA_FRAMES = b""


def open_drain(sock: zmq.Socket, max_bytes: int, raw: bool = True) -> Drain:
    """``drain(limit)``: up to ``limit`` queued messages (lists of frames) without blocking.

    Only the thread that owns ``sock`` may call it, and never after the socket was closed.
    Frames are at most ``max_bytes`` long (``zmq.MAXMSGSIZE`` refuses longer ones); one that
    still were longer would come back cut to ``max_bytes + 1`` bytes, which the codec refuses
    as too large. A message of more than two frames comes back as ``[first, second,
    EXTRA_FRAMES]``, the rest dropped uncopied. ``raw=False`` forces pyzmq's ``recv`` (what the
    fallback uses).
    """
    lib = _libzmq.loaded() if raw else None
    if lib is None or not _libzmq.owns(lib, sock):
        return _pyzmq_drain(sock)
    return _raw_drain(lib, sock, max_bytes)


def _pyzmq_drain(sock: zmq.Socket) -> Drain:
    recv, getsockopt, rcvmore, noblock = sock.recv, sock.getsockopt, zmq.RCVMORE, zmq.NOBLOCK

    def drain(limit: int) -> list[list[bytes]]:
        messages: list[list[bytes]] = []
        for _ in range(limit):
            try:
                message = [recv(noblock)]
            except zmq.Again:
                break
            # The rest of a message is queued with its first frame, so these never wait.
            while getsockopt(rcvmore):
                if len(message) < 2:
                    message.append(recv(noblock))
                    continue
                if len(message) == 2:
                    message.append(EXTRA_FRAMES)
                recv(noblock, copy=False)  # a zmq.Frame, dropped: no copy into Python bytes
            messages.append(message)
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
                if len(frames) == 2:
                    _skip_rest(lib, handle)
                    frames.append(EXTRA_FRAMES)
                    break
            append(frames)
        return messages

    return drain


def _skip_rest(lib: ctypes.PyDLL, handle: ctypes.c_void_p) -> None:
    """Receive the rest of a message, copying none of it (libzmq frees each frame)."""
    nowhere, nothing = ctypes.create_string_buffer(1), ctypes.c_size_t(0)  # copy at most 0 bytes
    more, size = ctypes.c_int(1), ctypes.c_size_t(ctypes.sizeof(ctypes.c_int))
    while more.value:
        if lib.zmq_recv(handle, nowhere, nothing, ctypes.c_int(zmq.DONTWAIT)) < 0:
            code = lib.zmq_errno()
            if code == errno.EINTR:
                continue
            raise zmq.ZMQError(code)  # never EAGAIN: a message's frames are queued together
        if lib.zmq_getsockopt(handle, ctypes.c_int(zmq.RCVMORE), ctypes.byref(more), ctypes.byref(size)) != 0:
            raise zmq.ZMQError(lib.zmq_errno())
