"""The HTTP edge of the rule engine's ``webhook.send`` action: one blocking, thread-safe sender.

Semantics: method defaults to POST, ``timeout_ms`` is clamped to 1000..30000 and bounds the
connect and then the whole reply, however slowly its server sends it; only a 2xx is a
success, redirects are never followed (a 3xx is a failure: following one could lead anywhere,
including inside the network), and every request carries ``Idempotency-Key`` so a receiver can
drop a retry it already handled.

Safety: targets whose addresses are loopback, private, link-local, metadata or reserved are
refused unless inside ``allow_networks``; the check is made on the addresses the connection
really uses (``bus._pinned``), so DNS rebinding cannot slip past it. Environment proxies,
``.netrc`` and cookies are ignored: a rule's request must not pick up ambient credentials or
another rule's cookies. Error texts are short categories and masked URLs — never header values,
URL credentials, tokens or response bodies.

Connections are reused: idle keep-alive connections wait in a pool (``pool_size`` per
origin, 16 origins) shared by all threads; one its server closed is dropped before use, and a
request that meets a connection its server closed just then is sent once more on a new one. A
reply's body is read (up to 64 KB, past which the connection is dropped) only so the
connection can carry the next request. The exchange itself is ``bus._http``: the request
written whole, with the sender's own framing (a rule's ``Content-Length`` or
``Transfer-Encoding`` is replaced), the reply parsed by ``http.client``. Host names go out in
IDNA 2008, as urllib3 sent them. Measured one POST after another against a receiver in another
process, that costs 260-460 µs of CPU against 720-800 µs through urllib3's pool manager on the
2-core benchmark machine, and the engine shares one GIL, so that time was taken from every
event. What ``requests`` added is done here: its default headers, Basic auth from URL
credentials, the CA bundle it verifies TLS against (plus ``extra_ca``, ``serve --webhook-ca``).

Every request carries ``webhook-id`` (the same on every attempt) and ``webhook-timestamp``
(unix seconds, of this attempt); with a ``signing_key`` also ``webhook-signature`` over the
exact body bytes sent (Standard Webhooks, ``workflow.policies.webhook_delivery``). A result
says what kind of failure it was (``kind``) and carries a 429's or 503's ``Retry-After``, so
the caller can tell a retry from a final failure without reading error texts.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple
from urllib.parse import unquote, urlencode, urlsplit

from requests.utils import DEFAULT_CA_BUNDLE_PATH

from brokerflow.bus._http import Connection, IdleConnections, Origin, ascii_host, host_header, request_bytes, target
from brokerflow.bus._pinned import DnsFailed, Resolver, TargetGuard, TargetRefused, connect_pinned, resolve
from brokerflow.errors import ActionFailed
from brokerflow.workflow.policies import webhook_delivery as policy
from brokerflow.workflow.policies.webhook_requests import clamp_timeout_ms, is_forbidden_ip, mask_url, normalize_method

MIN_TIMEOUT_MS, MAX_TIMEOUT_MS = 1000, 30000
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
USER_AGENT = "brokerflow-webhook/1"
DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*",
                   "Connection": "keep-alive"}


class WebhookRequest(NamedTuple):
    """One request (immutable). Named tuples, this and the result: one of each is made per
    attempt, and a frozen dataclass's ``__init__`` costs several times as much."""

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = _NO_HEADERS
    body: str | bytes | None = None
    timeout_ms: int = 5000
    idempotency_key: str | None = None
    webhook_id: str | None = None  # the Standard Webhooks ``webhook-id``; the same on every attempt
    signing_key: bytes | None = None  # signs when set; never shown

    def __repr__(self) -> str:
        return (f"WebhookRequest(url={mask_url(self.url)!r}, method={self.method!r}, "
                f"webhook_id={self.webhook_id!r}, signed={self.signing_key is not None})")


class WebhookResult(NamedTuple):
    ok: bool
    status: int | None
    error: str | None
    ms: float
    kind: str = policy.KIND_OK  # policy.KIND_*: what kind of failure (``ok`` for a 2xx)
    retry_after: str | None = None  # a 429's or 503's Retry-After, as sent (at most 64 characters)


class WebhookSender:
    """``send(request) -> WebhookResult``; never raises for a failed delivery."""

    def __init__(self, allow_networks: Sequence[str] = (), pool_size: int = 16, resolver: Resolver = resolve,
                 ca_certs: str = DEFAULT_CA_BUNDLE_PATH, extra_ca: str | None = None,
                 clock_s: Callable[[], float] = time.time) -> None:
        self._guard = TargetGuard(allow_networks, is_forbidden_ip, resolver)
        self._idle = IdleConnections(pool_size)
        self._ca_certs, self._extra_ca = ca_certs, extra_ca
        self._clock_s = clock_s
        self._tls: ssl.SSLContext | None = None  # built on the first https request
        if extra_ca:
            self._tls_context()  # an unreadable CA file fails the start, not the first request

    def send(self, request: WebhookRequest) -> WebhookResult:
        started = time.perf_counter()
        status: int | None = None
        retry_after: str | None = None
        try:
            status, retry_after = self._deliver(request)
            error, kind = _status_error(status)
        except ActionFailed as exc:
            error, kind = exc.text, _action_kind(exc)
        except (http.client.HTTPException, OSError, ValueError) as exc:
            error, kind = _request_error(exc, request)
        except Exception as exc:  # a webhook must never take its worker down
            error, kind = f"request failed ({type(exc).__name__})", policy.KIND_INVALID
        ms = round((time.perf_counter() - started) * 1000, 1)
        return WebhookResult(ok=error is None, status=status, error=error, ms=ms, kind=kind, retry_after=retry_after)

    def _deliver(self, request: WebhookRequest) -> tuple[int, str | None]:
        method, timeout_s, url = _check(request)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            host = ascii_host(parts.hostname or "")
        except ValueError:
            raise ActionFailed("invalid url") from None
        port = parts.port or (443 if scheme == "https" else 80)
        headers, body = _headers_and_body(request, int(self._clock_s()))
        data = request_bytes(method, target(parts), host_header(scheme, host, port), headers, body)
        origin = (scheme, host, port)
        conn = self._idle.take(origin)
        if conn is not None:
            try:
                return self._exchange(origin, conn, data, method, timeout_s)
            except _SERVER_CLOSED:
                pass  # it closed the idle connection as we used it: once more, on a new one
        return self._exchange(origin, self._connect(scheme, host, port, timeout_s), data, method, timeout_s)

    def _exchange(self, origin: Origin, conn: Connection, data: bytes, method: str,
                  timeout_s: float) -> tuple[int, str | None]:
        try:
            status, reusable, retry_after = conn.exchange(data, method, timeout_s)
        except BaseException:
            conn.close()
            raise
        if reusable:
            self._idle.put(origin, conn)
        else:
            conn.close()
        return status, retry_after

    def _connect(self, scheme: str, host: str, port: int, timeout_s: float) -> Connection:
        """A new connection to a checked address of ``host``; connect and TLS errors say which they are."""
        try:
            sock = connect_pinned(self._guard, host, port, timeout_s)
        except TimeoutError:
            raise _ConnectTimeout from None
        except OSError as exc:
            raise _ConnectFailed from exc
        if scheme == "https":
            try:
                sock = self._tls_context().wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        return Connection(sock)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            context = ssl.create_default_context(cafile=self._ca_certs)  # CERT_REQUIRED, host name checked
            if self._extra_ca:
                context.load_verify_locations(cafile=self._extra_ca)  # trusted as well as the bundle
            self._tls = context
        return self._tls

    def close(self) -> None:
        self._idle.close()


# A reused connection failing like this never had the request answered: its server had closed
# it while it sat idle. Sent again once, on a new connection (Idempotency-Key covers the rare
# server that did act on it).
_SERVER_CLOSED = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class _ConnectTimeout(OSError):
    """No TCP connection within the timeout."""


class _ConnectFailed(OSError):
    """Every checked address refused or was unreachable."""


def _check(request: WebhookRequest) -> tuple[str, float, str]:
    """The method, the timeout in seconds and the URL to open; ActionFailed for what is never sent."""
    if not isinstance(request.url, str):
        raise ActionFailed("url must be a string")
    try:
        parts = urlsplit(request.url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ActionFailed("invalid url") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ActionFailed("unsupported url scheme (only http and https)")
    if not parts.hostname:
        raise ActionFailed("url has no host")
    url = request.url
    if "#" in url:
        url = url.split("#", 1)[0]  # a fragment is never sent
    return normalize_method(request.method), _timeout_ms(request) / 1000, url


def _headers_and_body(request: WebhookRequest, timestamp: int) -> tuple[dict[str, str], bytes | None]:
    """What a ``requests.Session`` would send: its defaults, the caller's headers over them (names
    compared without case), Basic auth from URL credentials unless given, a form-encoded map
    body, and ``Idempotency-Key`` and the ``webhook-*`` headers last (they replace any the
    caller gave); the signature covers the body bytes returned here, which are those sent."""
    headers = dict(DEFAULT_HEADERS)
    names = {name.lower(): name for name in headers}

    def put(name: str, value: str) -> None:
        previous = names.pop(name.lower(), None)
        if previous is not None:
            del headers[previous]
        headers[name] = value
        names[name.lower()] = name

    for name, value in (request.headers or {}).items():
        put(str(name), str(value))
    parts = urlsplit(request.url)
    if parts.username is not None and "authorization" not in names:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode("latin-1", "replace")
        put("Authorization", "Basic " + base64.b64encode(pair).decode("ascii"))
    body = request.body
    if isinstance(body, Mapping):
        body = urlencode(list(body.items()), doseq=True)
        if "content-type" not in names:
            put("Content-Type", "application/x-www-form-urlencoded")
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is not None and not isinstance(body, bytes | bytearray):
        raise ActionFailed("body must be text or a map")
    if request.idempotency_key:
        put("Idempotency-Key", request.idempotency_key)
    if request.webhook_id:
        put("webhook-id", request.webhook_id)
        put("webhook-timestamp", str(timestamp))
        if request.signing_key:
            signed = bytes(body) if body is not None else b""
            put("webhook-signature", policy.signature(request.signing_key, request.webhook_id, timestamp, signed))
    return headers, body


def _status_error(status: int) -> tuple[str | None, str]:
    if 200 <= status < 300:
        return None, policy.KIND_OK
    if 300 <= status < 400:
        return f"redirect not followed (HTTP {status})", policy.KIND_REDIRECT
    return f"HTTP {status}", policy.KIND_HTTP


def _action_kind(exc: ActionFailed) -> str:
    if isinstance(exc, DnsFailed):
        return policy.KIND_DNS
    if isinstance(exc, TargetRefused):
        return policy.KIND_REFUSED
    return policy.KIND_INVALID  # a URL, method or body that can never be sent


def _request_error(exc: Exception, request: WebhookRequest) -> tuple[str, str]:
    """A short category and its kind; the library's own messages quote URLs and header values, so never them."""
    target = mask_url(request.url)
    if isinstance(exc, _ConnectTimeout):
        return f"connect timeout ({target})", policy.KIND_TIMEOUT
    if isinstance(exc, _ConnectFailed):
        return f"connection failed ({target})", policy.KIND_CONNECT
    if isinstance(exc, ssl.CertificateError):  # SSLCertVerificationError: it will be refused again
        return f"tls error: certificate refused ({target})", policy.KIND_CERTIFICATE
    if isinstance(exc, ssl.SSLError):
        return f"tls error ({target})", policy.KIND_TLS
    if isinstance(exc, TimeoutError):
        return f"timeout: no response within {_timeout_ms(request)} ms", policy.KIND_TIMEOUT
    if isinstance(exc, http.client.InvalidURL):
        return "invalid url", policy.KIND_INVALID
    if isinstance(exc, http.client.HTTPException | OSError):  # a broken reply, a reset: the server's trouble
        return f"connection failed ({target})", policy.KIND_CONNECT
    if isinstance(exc, ValueError):  # request_bytes refuses a header that could split the request
        return "invalid header", policy.KIND_INVALID
    return f"request failed ({type(exc).__name__})", policy.KIND_INVALID


def _timeout_ms(request: WebhookRequest) -> int:
    """The caller clamps already; clamp again so no request can hang a worker longer."""
    return min(max(clamp_timeout_ms(request.timeout_ms), MIN_TIMEOUT_MS), MAX_TIMEOUT_MS)
