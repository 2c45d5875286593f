"""The HTTP/1.1 exchange under the webhook sender: one write per request, the standard parser for replies.

A request is serialised here, headers and body in one buffer, and written with one
``sendall``: ``http.client`` and urllib3 write the body apart from the headers, and on the
benchmark machine each loopback write costs ~125 µs of CPU, a third of a whole POST. The
reply is read by the standard library's ``http.client.HTTPResponse`` (status line, headers,
chunked or sized bodies, keep-alive), so no response parsing is hand-written. Idle
connections wait in ``IdleConnections`` for the next request to the same origin.
"""

from __future__ import annotations

import http.client
import re
import select
import socket
import threading
from collections import defaultdict
from collections.abc import Mapping
from urllib.parse import SplitResult, quote

MAX_RESPONSE_BYTES = 64 * 1024  # past this a reply's body is dropped with its connection
BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))  # they say Content-Length: 0 when empty

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch  # a header name (RFC 9110 token)
_BREAKS = re.compile(r"[\r\n\x00]").search  # no header value may end the line or hold a NUL
# What a request target may hold as is; anything else is percent-encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"

Origin = tuple[str, str, int]  # scheme, host, port


def target(parts: SplitResult) -> str:
    """The request target of a URL: path and query, percent-encoded where needed, never the fragment."""
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    return f"{path}?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else path


def host_header(scheme: str, host: str, port: int) -> str:
    """``Host`` as clients send it: IDNA for a non-ASCII name, brackets for IPv6, no default port."""
    try:
        name = host.encode("ascii").decode("ascii")
    except UnicodeEncodeError:
        name = host.encode("idna").decode("ascii")
    if ":" in name:
        name = f"[{name}]"
    return name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"


def request_bytes(method: str, request_target: str, host: str, headers: Mapping[str, str],
                  body: bytes | bytearray | None) -> bytes:
    """The whole request. ``Host`` and ``Content-Length`` are added unless given.

    ValueError for a header that could split the request (a name that is not a token, a
    value with CR, LF or NUL, or one Latin-1 cannot carry).
    """
    lines = [f"{method} {request_target} HTTP/1.1"]
    names = set()
    for name, value in headers.items():
        if not _TOKEN(name) or _BREAKS(value):
            raise ValueError("invalid header")
        lines.append(f"{name}: {value}")
        names.add(name.lower())
    if "host" not in names:
        lines.insert(1, f"Host: {host}")
    if "content-length" not in names and (body is not None or method in BODY_METHODS):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")  # UnicodeEncodeError is a ValueError
    return head + body if body else head


class Connection:
    """One keep-alive connection; it only ever carries whole exchanges, one at a time."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def exchange(self, data: bytes, method: str, timeout_s: float) -> tuple[int, bool]:
        """Send one request, read its reply: (status, whether the connection may carry another)."""
        self.sock.settimeout(timeout_s)
        self.sock.sendall(data)
        response = http.client.HTTPResponse(self.sock, method=method)
        try:
            response.begin()
            return response.status, _drain(response)
        finally:
            response.close()

    def still_open(self) -> bool:
        """An idle connection has nothing to read: readable means its server closed it (or misbehaved)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        self.sock.close()


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
    """Connections between requests: per origin, newest first, at most ``size`` each; the rest close."""

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._idle: dict[Origin, list[Connection]] = defaultdict(list)
        self._lock = threading.Lock()

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
        with self._lock:
            stack = self._idle[origin]
            if len(stack) < self._size:
                stack.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            stacks, self._idle = list(self._idle.values()), defaultdict(list)
        for stack in stacks:
            for conn in stack:
                conn.close()
