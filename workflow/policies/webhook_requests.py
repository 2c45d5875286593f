"""Webhook policy: timeouts, methods, secret masking for logs and the target address check.

Pure functions only; the HTTP sender (``bus.webhook_sender``) applies them. Masking errs on the side
of hiding: a run log is read by more people than the rule's author, and the rule engine's contract
asks that "runtime logs mask common webhook tokens".
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from brokerflow.errors import ActionFailed

DEFAULT_TIMEOUT_MS, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS = 5000, 1000, 30000
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MASK = "***"

_SECRET_WORDS = ("token", "key", "secret", "sign", "pass", "auth")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# A path or text run that looks generated: 32+ hex digits, or 24+ token characters mixing
# upper case, lower case and digits (Slack/Telegram/Discord-style URL secrets).
_LONG_RUN = re.compile(r"[A-Za-z0-9_\-]{24,}")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/\-]+=*")
_KEY_VALUE = re.compile(
    r"(?i)(?P<name>[\w\-]*(?:token|key|secret|sign|pass|auth)[\w\-]*)"
    r"(?P<sep>[\"']?\s*[=:]\s*[\"']?)(?P<scheme>(?:bearer|basic)\s+)?(?P<value>[^\s&\"',;}]+)"
)
_URL = re.compile(r"(?i)\bhttps?://[^\s\"'<>]+")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


def clamp_timeout_ms(value: Any) -> int:
    """The rule engine's contract: default 5000 ms, clamped to 1000..30000 (junk counts as the default)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return DEFAULT_TIMEOUT_MS
    return int(min(max(value, MIN_TIMEOUT_MS), MAX_TIMEOUT_MS))


def normalize_method(method: Any) -> str:
    """Upper-case HTTP method, ``POST`` when omitted; anything else is an action failure."""
    if method is None or method == "":
        return "POST"
    name = str(method).strip().upper()
    if name not in METHODS:
        raise ActionFailed(f"unsupported webhook method {str(method)[:20]!r}")
    return name


def is_secret_name(name: Any) -> bool:
    lowered = str(name).lower()
    return lowered in _SECRET_HEADERS or any(word in lowered for word in _SECRET_WORDS)


def _looks_generated(run: str) -> bool:
    if _HEX.fullmatch(run):
        return True
    return (any(c.isdigit() for c in run) and any(c.isupper() for c in run)
            and any(c.islower() for c in run))


def _mask_runs(text: str) -> str:
    return _LONG_RUN.sub(lambda m: MASK if _looks_generated(m.group(0)) else m.group(0), text)


def _mask_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        parts.append(f"{name}={MASK}" if eq and is_secret_name(unquote(name)) else part)
    return _mask_runs("&".join(parts))


def mask_url(url: str) -> str:
    """``user:password@`` -> ``user:***@``; secret-named query values and generated path runs -> ***."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return mask_text_plain(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if colon else f"{MASK}@{hostport}"
    return urlunsplit((parts.scheme, netloc, _mask_runs(parts.path), _mask_query(parts.query),
                       _mask_query(parts.fragment) if parts.fragment else ""))


def mask_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy with the values of credential-like headers replaced by ``***``."""
    return {name: MASK if is_secret_name(name) else value for name, value in (headers or {}).items()}


def mask_text_plain(text: str) -> str:
    """Mask credentials in free text that holds no URL (see ``mask_text``)."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _KEY_VALUE.sub(lambda m: f"{m['name']}{m['sep']}{m['scheme'] or ''}{MASK}", text)


def mask_text(text: Any) -> str:
    """Mask ``Bearer x``, ``token=x``, ``"api_key": "x"`` and URL secrets in a log or error text."""
    if text is None:
        return ""
    text = str(text)
    pieces, last = [], 0
    for match in _URL.finditer(text):
        pieces.append(mask_text_plain(text[last:match.start()]))
        pieces.append(mask_url(match.group(0)))
        last = match.end()
    pieces.append(mask_text_plain(text[last:]))
    return "".join(pieces)


def _networks(allow: Sequence[Any]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for cidr in allow or ():
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except (TypeError, ValueError):
            continue  # settings validate the list; a bad entry allows nothing
    return nets


def _parse_ip(ip: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = str(ip).strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _forbidden(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (addr.is_loopback or addr.is_private or addr.is_link_local or addr.is_reserved
            or addr.is_multicast or addr.is_unspecified or addr in _METADATA
            or (addr.version == 4 and addr in _CGNAT)
            or (addr.version == 6 and addr.is_site_local))


def _embedded_ipv4(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 address a 6to4 IPv6 one reaches (NAT64's 64:ff9b::/96 is reserved: refused)."""
    if addr.version == 4:
        return []
    return [addr.sixtofour] if addr.sixtofour is not None else []


def is_forbidden_ip(ip: str, allow: Sequence[str] = ()) -> bool:
    """Is a webhook to ``ip`` refused? Loopback, private, link-local, reserved, multicast,
    unspecified, carrier-grade NAT, cloud metadata (and their IPv4-mapped IPv6 forms) are,
    unless inside an ``allow`` CIDR. An unparsable address is refused."""
    addr = _parse_ip(ip)
    if addr is None:
        return True
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # the kernel connects to the IPv4 address itself
    candidates = [addr, *_embedded_ipv4(addr)]
    nets = _networks(allow)
    if any(a in net for a in candidates for net in nets if a.version == net.version):
        return False
    return any(_forbidden(a) for a in candidates)


def idempotency_key(run_id: Any, action_index: int, event: tuple[Any, ...] | None = None) -> str:
    """The same run's same action always sends the same key, so a receiver can drop repeats.

    A run of a bus event gives its ``event`` — ``(source, seq, rule_id)`` — and the key comes from
    that instead of the run id: a run repeated after a crash (docs/delivery.md: an in-flight run is
    run again, with a new run id) sends the key of the first attempt.
    """
    if event is not None:
        digest = hashlib.sha256("\x1f".join(map(str, event)).encode()).hexdigest()[:24]
        return f"brokerflow-e{digest}-{action_index}"
    return f"brokerflow-{run_id}-{action_index}"
