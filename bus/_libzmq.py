"""The libzmq that pyzmq loaded, reachable through ``ctypes.PyDLL`` so a call keeps the GIL.

pyzmq releases the GIL around every send and receive, even a non-blocking one that returns in
a microsecond; beside the engine's busy actor threads each release hands the GIL away and the
caller waits up to a switch interval to get it back. The ingress drain (``bus._drain``), the
outbound PUB (``bus.outbound``) and the management API's replies (``api.server``) therefore
call libzmq's own functions with ``ZMQ_DONTWAIT``, which never block, so keeping the GIL for
them is harmless.

Only the very copy pyzmq's sockets live in may be used: exactly one libzmq mapped into the
process (Linux ``/proc/self/maps``), of pyzmq's version, that recognises the socket. Anything
else (another platform, two copies loaded) answers None and the callers use pyzmq.
"""

from __future__ import annotations

import ctypes
import errno
import threading
from collections.abc import Callable, Sequence

import zmq

MultipartSender = Callable[[Sequence[bytes]], None]

_lock = threading.Lock()
_LIB: ctypes.PyDLL | None | bool = False  # False: not looked up yet; None: unavailable


def loaded() -> ctypes.PyDLL | None:
    """The one libzmq of this process, version-checked against pyzmq's; looked up once."""
    global _LIB
    with _lock:
        if _LIB is False:
            _LIB = _find()
        return _LIB  # type: ignore[return-value]


def owns(lib: ctypes.PyDLL, sock: zmq.Socket) -> bool:
    """The library sees ``sock`` as the socket pyzmq says it is (same copy, same ABI)."""
    kind, size = ctypes.c_int(-1), ctypes.c_size_t(ctypes.sizeof(ctypes.c_int))
    rc = lib.zmq_getsockopt(ctypes.c_void_p(sock.underlying), ctypes.c_int(zmq.TYPE),
                            ctypes.byref(kind), ctypes.byref(size))
    return rc == 0 and kind.value == sock.type


def multipart_sender(sock: zmq.Socket) -> MultipartSender | None:
    """``send(frames)``: one message through this libzmq with the GIL held, or None (use pyzmq).

    Never blocks (``ZMQ_DONTWAIT``): a full queue raises ``zmq.Again`` at the first frame, when
    nothing of the message went out; a frame that is not ``bytes`` raises ``TypeError`` before
    any is sent; a closed socket or any other failure raises ``zmq.ZMQError``. Only the thread
    that owns ``sock`` (or holds its lock) may call it.
    """
    lib = loaded()
    if lib is None or not owns(lib, sock):
        return None
    zmq_send, zmq_errno = lib.zmq_send, lib.zmq_errno
    handle = ctypes.c_void_p(sock.underlying)
    more, last = ctypes.c_int(zmq.SNDMORE | zmq.DONTWAIT), ctypes.c_int(zmq.DONTWAIT)
    size, eagain, eintr = ctypes.c_size_t, errno.EAGAIN, errno.EINTR

    def send(frames: Sequence[bytes]) -> None:
        if sock.closed:  # the handle would point at freed memory
            raise zmq.ZMQError(errno.ENOTSOCK)
        for frame in frames:  # checked before the first goes out: never half a message
            if type(frame) is not bytes:
                raise TypeError(f"a frame must be bytes, not {type(frame).__name__}")
        end = len(frames) - 1
        for index, frame in enumerate(frames):
            flags = last if index == end else more
            while zmq_send(handle, frame, size(len(frame)), flags) < 0:
                code = zmq_errno()
                if code == eintr:
                    continue
                raise zmq.Again(code) if code == eagain else zmq.ZMQError(code)

    return send


def _mapped_path() -> str | None:
    paths = set()
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6 and "libzmq" in parts[5].rsplit("/", 1)[-1]:
                    paths.add(parts[5].strip())
    except OSError:
        return None
    return paths.pop() if len(paths) == 1 else None


def _find() -> ctypes.PyDLL | None:
    path = _mapped_path()
    if path is None:
        return None
    try:
        lib = ctypes.PyDLL(path)
        major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.zmq_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
        for name in ("zmq_recv", "zmq_send", "zmq_getsockopt", "zmq_errno"):
            getattr(lib, name).restype = ctypes.c_int
        lib.zmq_send.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
    except (OSError, AttributeError):
        return None
    if (major.value, minor.value, patch.value) != zmq.zmq_version_info():
        return None
    return lib
