"""The HTTP/1.1 exchange under the webhook sender: the request written whole, the reply parsed by the standard library.

A request is serialised here into one buffer (request line, ``Host``, headers,
``Content-Length``, body) and written with one ``sendall``; its framing is always the
sender's own, so no header a rule supplies can make two requests of one. The reply is read by
``http.client.HTTPResponse``: status line, headers, chunked or sized bodies and keep-alive
are the standard library's, not hand-written. Idle connections wait in ``IdleConnections``
for the next request to the same origin. Against urllib3's pool manager this costs less than
half the CPU per POST (see ``bus.webhook``)."""

from __future__ import annotations

import functools
import http.client
import io
import ipaddress
import re
import select
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, BinaryIO
from urllib.parse import SplitResult, quote

import idna

MAX_RESPONSE_BYTES = 64 * 1024  # past this a reply's body is dropped with its connection
MAX_INTERIM_REPLIES = 16  # 1xx replies read past before the final one; more fail the request
BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))  # they say Content-Length: 0 when empty

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch  # a header name (RFC 9110 token)
_BREAKS = re.compile(r"[\r\n\x00]").search  # no header value may end the line or hold a NUL
_FRAMING = frozenset(("content-length", "transfer-encoding"))  # the sender's alone
IDLE_ORIGINS = 16  # origins whose idle connections are kept; the least recently used go
# What a request target may hold as is; anything else is percent-encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"

Origin = tuple[str, str, int]  # scheme, host, port


def target(parts: SplitResult) -> str:
    """The request target of a URL: path and query, percent-encoded where needed, never the fragment."""
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    return f"{path}?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else path


@functools.lru_cache(maxsize=1024)
def ascii_host(host: str) -> str:
    """The host as DNS, TLS and ``Host`` must see it: an IP literal as is, a name in IDNA 2008.

    Python's own ``idna`` codec is IDNA 2003, which maps ``faß.de`` to ``fass.de``: another
    domain, with another owner. ``ValueError`` for a name that is not a valid host name.
    """
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return idna.encode(host.rstrip(".").lower(), strict=True, std3_rules=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError("invalid host name") from exc


def host_header(scheme: str, host: str, port: int) -> str:
    """``Host`` for an ``ascii_host``: brackets for IPv6, no default port."""
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"


def request_bytes(method: str, request_target: str, host: str, headers: Mapping[str, str],
                  body: bytes | bytearray | None) -> bytes:
    """The whole request. ``Host`` is added unless given; the framing is always the sender's.

    A ``Content-Length`` or ``Transfer-Encoding`` among ``headers`` is dropped and the body's
    real length sent: a length that lies (or chunked framing around a plain body) would let
    the body pass for the start of another request on the same connection. ValueError for a
    header that could split the request (a name that is not a token, a value with CR, LF or
    NUL, or one Latin-1 cannot carry).
    """
    lines = [f"{method} {request_target} HTTP/1.1"]
    has_host = False
    for name, value in headers.items():
        if not _TOKEN(name) or _BREAKS(value):
            raise ValueError("invalid header")
        lowered = name.lower()
        if lowered in _FRAMING:
            continue
        has_host = has_host or lowered == "host"
        lines.append(f"{name}: {value}")
    if not has_host:
        lines.insert(1, f"Host: {host}")
    if body is not None or method in BODY_METHODS:
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")  # UnicodeEncodeError is a ValueError
    return head + body if body else head


class Connection:
    """One keep-alive connection; it only ever carries whole exchanges, one at a time."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def exchange(self, data: bytes, method: str, timeout_s: float) -> tuple[int, bool, str | None]:
        """Send one request, read its reply: (status, whether the connection may carry another,
        its ``Retry-After`` value or None).

        The whole reply must arrive within ``timeout_s`` (``TimeoutError`` otherwise), however
        its server paces it. Interim replies (103 Early Hints, 102) are read past to the final
        one; after ``MAX_INTERIM_REPLIES`` of them, or a 101 (what follows is no longer HTTP),
        the last status is the answer and the connection is not reused.
        """
        self.sock.settimeout(timeout_s)
        self.sock.sendall(data)
        reader = _SharedReader(io.BufferedReader(_DeadlineReader(self.sock, time.monotonic() + timeout_s)))
        try:
            for _ in range(MAX_INTERIM_REPLIES):
                response = http.client.HTTPResponse(reader, method=method)
                response.begin()
                if response.status >= 200:
                    return response.status, _drain(response), _retry_after(response)
                if response.status == 101:
                    break
                response.fp = None  # done with: closing it (as its finaliser would) must not close the buffer
            return response.status, False, None
        finally:
            reader.fp.close()

    def still_open(self) -> bool:
        """An idle connection has nothing to read: readable means its server closed it (or misbehaved).

        ``poll``, not ``select``: select refuses descriptors past 1023, and a busy engine has more.
        """
        try:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        self.sock.close()


class _DeadlineReader(socket.SocketIO):
    """The socket's reading side, with one deadline for all its reads.

    A socket's own timeout bounds each read, so a server that sends its reply a few bytes at
    a time could hold a worker for as long as it liked; here every read gets only what is
    left of the request's time.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__(sock, "rb")
        self._deadline = deadline

    def readinto(self, buffer: Any) -> int | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete reply within the timeout")
        self._sock.settimeout(remaining)
        return super().readinto(buffer)


class _SharedReader:
    """Stands where ``HTTPResponse`` expects a socket: every reply of one exchange reads the same buffer.

    ``HTTPResponse`` reads through a buffered file it makes from its socket; what that buffer
    holds past an interim reply's headers is the start of the next reply, so the replies after
    it must read on from the same buffer, not from the socket.
    """

    __slots__ = ("fp",)

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp

    def makefile(self, _mode: str) -> BinaryIO:
        return self.fp


def _retry_after(response: http.client.HTTPResponse) -> str | None:
    """The reply's ``Retry-After`` (the first one, at most 64 characters), for 429 and 503 only."""
    if response.status not in (429, 503):
        return None
    value = response.headers.get("Retry-After")
    return value[:64] if isinstance(value, str) else None


def _drain(response: http.client.HTTPResponse) -> bool:
    """Read and drop the body: True when it ended within the cap and the server keeps the connection."""
    budget = MAX_RESPONSE_BYTES
    while not response.isclosed():
        chunk = response.read(min(16384, budget + 1))
        if not chunk:
            break
        budget -= len(chunk)
        if budget < 0:
            return False  # the rest is never read, so the connection cannot be reused
    return response.isclosed() and not response.will_close


class IdleConnections:
    """Connections between requests: per origin, newest first, at most ``size`` each.

    At most ``IDLE_ORIGINS`` origins keep connections (the least recently used one's close
    when another comes), so a rule set calling many hosts cannot pile up sockets; after
    ``close`` every connection handed back is closed.
    """

    def __init__(self, size: int, origins: int = IDLE_ORIGINS) -> None:
        self._size, self._origins = max(1, size), max(1, origins)
        self._idle: OrderedDict[Origin, list[Connection]] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False

    def take(self, origin: Origin) -> Connection | None:
        while True:
            with self._lock:
                stack = self._idle.get(origin)
                if not stack:
                    return None
                conn = stack.pop()
            if conn.still_open():
                return conn
            conn.close()

    def put(self, origin: Origin, conn: Connection) -> None:
        evicted: list[Connection] = []
        kept = False
        with self._lock:
            if not self._closed:
                stack = self._idle.setdefault(origin, [])
                self._idle.move_to_end(origin)
                while len(self._idle) > self._origins:
                    evicted.extend(self._idle.popitem(last=False)[1])
                if len(stack) < self._size:
                    stack.append(conn)
                    kept = True
        for stale in evicted if kept else [*evicted, conn]:
            stale.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            stacks, self._idle = list(self._idle.values()), OrderedDict()
        for stack in stacks:
            for conn in stack:
                conn.close()
