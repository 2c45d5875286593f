"""The HTTP edge of the ``webhook.send`` action (seed 000): one blocking, thread-safe sender.

Semantics: method defaults to POST, ``timeout_ms`` is clamped to 1000..30000, only a 2xx is a
success, redirects are never followed (a 3xx is a failure: following one could lead anywhere,
including inside the network), and every request carries ``Idempotency-Key`` so a receiver can
drop a retry it already handled.

Safety: targets whose addresses are loopback, private, link-local, metadata or reserved are
refused unless inside ``allow_networks``; the check is made on the addresses the connection
really uses (``bus._pinned``), so DNS rebinding cannot slip past it. Environment proxies,
``.netrc`` and cookies are ignored: a rule's request must not pick up ambient credentials or
another rule's cookies. Error texts are short categories and masked URLs — never header values,
URL credentials, tokens or response bodies.

Connections are reused: one pool (``pool_size`` per host) shared by all threads, one
``requests.Session`` per thread on top of it.
"""

from __future__ import annotations

import http.cookiejar
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from brokerflow.errors import ActionFailed
from bus._pinned import PinnedAdapter, TargetGuard, resolve
from workflow.webhooks import clamp_timeout_ms, is_forbidden_ip, mask_url, normalize_method

MIN_TIMEOUT_MS, MAX_TIMEOUT_MS = 1000, 30000
# The body is read only so the connection can be reused; past this it is dropped with it.
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "brokerflow-webhook/1"


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | bytes | None = None
    timeout_ms: int = 5000
    idempotency_key: str | None = None


@dataclass(frozen=True)
class WebhookResult:
    ok: bool
    status: int | None
    error: str | None
    ms: float


class WebhookSender:
    """``send(request) -> WebhookResult``; never raises for a failed delivery."""

    def __init__(self, allow_networks: Sequence[str] = (), pool_size: int = 16, resolver=resolve) -> None:
        self._guard = TargetGuard(allow_networks, is_forbidden_ip, resolver)
        self._adapter = PinnedAdapter(self._guard, pool_connections=pool_size, pool_maxsize=pool_size,
                                      max_retries=0)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no env proxies (they would bypass the address check), no .netrc
            session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
            session.mount("http://", self._adapter)
            session.mount("https://", self._adapter)
            self._local.session = session
        return session

    def send(self, request: WebhookRequest) -> WebhookResult:
        started = time.perf_counter()
        status: int | None = None
        try:
            status = self._deliver(request)
            error = _status_error(status)
        except ActionFailed as exc:
            error = exc.text
        except requests.RequestException as exc:
            error = _request_error(exc, request)
        except Exception as exc:  # a webhook must never take its worker down
            error = f"request failed ({type(exc).__name__})"
        ms = round((time.perf_counter() - started) * 1000, 1)
        return WebhookResult(ok=error is None, status=status, error=error, ms=ms)

    def _deliver(self, request: WebhookRequest) -> int:
        method, timeout_s = _check(request)
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(request.headers or {})
        if request.idempotency_key:
            headers["Idempotency-Key"] = request.idempotency_key
        body = request.body.encode("utf-8") if isinstance(request.body, str) else request.body
        with self._session().request(method, request.url, headers=headers, data=body, timeout=timeout_s,
                                     allow_redirects=False, stream=True) as response:
            read = 0
            for chunk in response.iter_content(16384):
                read += len(chunk)
                if read > MAX_RESPONSE_BYTES:
                    break  # closing an unfinished response discards its connection
            return response.status_code

    def close(self) -> None:
        self._adapter.close()


def _check(request: WebhookRequest) -> tuple[str, float]:
    """The method and the timeout in seconds; ActionFailed for what is never sent."""
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
    return normalize_method(request.method), _timeout_ms(request) / 1000


def _status_error(status: int) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"redirect not followed (HTTP {status})"
    return f"HTTP {status}"


def _request_error(exc: requests.RequestException, request: WebhookRequest) -> str:
    """A short category; requests' own messages quote the full URL, so they are never used."""
    target = mask_url(request.url)
    if isinstance(exc, requests.ConnectTimeout):
        return f"connect timeout ({target})"
    if isinstance(exc, requests.Timeout):
        return f"timeout: no response within {_timeout_ms(request)} ms"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"tls error ({target})"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed ({target})"
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return "invalid header"
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        return "invalid url"
    return f"request failed ({type(exc).__name__})"


def _timeout_ms(request: WebhookRequest) -> int:
    """The caller clamps already; clamp again so no request can hang a worker longer."""
    return min(max(clamp_timeout_ms(request.timeout_ms), MIN_TIMEOUT_MS), MAX_TIMEOUT_MS)
