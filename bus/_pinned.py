"""Connections that check, then pin, the address they connect to.

Checking a URL's host and then letting the HTTP library resolve it again leaves a window for
DNS rebinding (the name answers a public address to the check and 127.0.0.1 to the connect).
Here the host is resolved once, every address is checked, and the socket connects to one of
those very addresses; TLS still verifies the certificate against the URL's host name (the
caller wraps the socket with it as ``server_hostname``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

from brokerflow.errors import ActionFailed

Resolver = Callable[[str, int], list[str]]


class DnsFailed(ActionFailed):
    """The host name resolved to nothing (worth another try later: DNS recovers)."""


class TargetRefused(ActionFailed):
    """The host resolves to an address the guard refuses (final: it will be refused again)."""


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise DnsFailed("dns lookup failed") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class TargetGuard:
    """Resolves a host and refuses it when any address is forbidden (see ``is_forbidden``)."""

    def __init__(self, allow: Sequence[str], is_forbidden: Callable[[str, Sequence[str]], bool],
                 resolver: Resolver = resolve) -> None:
        self.allow = tuple(allow)
        self._is_forbidden = is_forbidden
        self._resolve = resolver

    def addresses(self, host: str, port: int) -> list[str]:
        addresses = self._resolve(host, port)
        if not addresses:
            raise DnsFailed("dns lookup failed")
        for ip in addresses:
            if self._is_forbidden(ip, self.allow):
                raise TargetRefused("target refused: it resolves to a loopback, private, link-local "
                                   "or reserved address (see --webhook-allow)")
        return addresses


def connect_pinned(guard: TargetGuard, host: str, port: int, timeout_s: float) -> socket.socket:
    """A TCP connection to an address of ``host`` that ``guard`` checked: the first that answers.

    ``host`` comes as ``bus._http.ascii_host`` gives it (IDNA 2008, no trailing dot).

    A refused or unreachable address moves on to the next one; a timeout ends the attempt
    (``TimeoutError``), like every other address failing (``OSError``).
    """
    last_error: OSError | None = None
    for ip in guard.addresses(host, port):
        try:
            sock = socket.create_connection((ip, port), timeout=timeout_s)
        except TimeoutError:
            raise
        except OSError as exc:
            last_error = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a request is one write; never wait on it
        return sock
    assert last_error is not None
    raise last_error
