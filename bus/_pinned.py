"""A requests adapter whose connections check, then pin, the address they connect to.

Checking a URL's host and then letting the HTTP library resolve it again leaves a window for
DNS rebinding (the name answers a public address to the check and 127.0.0.1 to the connect).
Here the check happens inside urllib3's ``_new_conn``, on the very addresses the socket then
connects to; TLS still verifies the certificate against the URL's host name, because urllib3
takes the SNI/verification name from ``host`` after ``_new_conn`` returns.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from brokerflow.errors import ActionFailed

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ActionFailed("dns lookup failed") from None
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
            raise ActionFailed("dns lookup failed")
        for ip in addresses:
            if self._is_forbidden(ip, self.allow):
                raise ActionFailed("target refused: it resolves to a loopback, private, link-local "
                                   "or reserved address (see --webhook-allow)")
        return addresses


class _PinnedMixin:
    guard: TargetGuard
    _dns_host: str
    port: int

    def _new_conn(self):  # type: ignore[no-untyped-def]
        host = self._dns_host
        last_error: Exception | None = None
        for ip in self.guard.addresses(host.rstrip("."), self.port):
            self._dns_host = ip
            try:
                return super()._new_conn()  # type: ignore[misc]
            except NewConnectionError as exc:  # refused/unreachable: try the next address
                last_error = exc
            finally:
                self._dns_host = host
        assert last_error is not None
        raise last_error


class PinnedAdapter(HTTPAdapter):
    """``HTTPAdapter`` whose pools build connections that go through ``guard``."""

    def __init__(self, guard: TargetGuard, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._guard = guard
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        attrs = {"guard": self._guard}
        http_conn = type("PinnedHTTPConnection", (_PinnedMixin, HTTPConnection), attrs)
        https_conn = type("PinnedHTTPSConnection", (_PinnedMixin, HTTPSConnection), attrs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }
