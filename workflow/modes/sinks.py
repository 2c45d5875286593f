"""Signed sink URLs and the sink request as rules see it (pure; the clock is passed in).

A sink URL is ``/sink/<route>?__sign=SIG[&__expires=UNIX]`` where

    SIG = HMAC-SHA256(secret, "<METHOD>\\n<route>\\n<expires or empty>")

``route`` is the path after ``/sink/`` without leading or trailing slashes, ``METHOD`` is
upper case or ``*`` (valid for any method). SIG travels as 64 hex digits or as unpadded
URL-safe base64 (43 characters); both are accepted. Nothing is stored: the server secret
re-derives the signature and compares it in constant time. A signature made with an expiry
covers it, so dropping or changing ``__expires`` breaks the signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from brokerflow.errors import BadRequest, Unauthenticated
from brokerflow.workflow.context import mapping_context

SIGN_PARAM = "__sign"
EXPIRES_PARAM = "__expires"
ASYNC_PARAM = "__async"
RESERVED_PARAMS = (SIGN_PARAM, EXPIRES_PARAM, ASYNC_PARAM)
ANY_METHOD = "*"
MAX_BODY_BYTES = 256 * 1024


def canonical_route(route: str) -> str:
    return str(route).strip("/")


def _message(method: str, route: str, expires: int | None) -> bytes:
    return f"{method.upper()}\n{canonical_route(route)}\n{'' if expires is None else int(expires)}".encode()


def _digest(secret: str, method: str, route: str, expires: int | None) -> bytes:
    return hmac.new(secret.encode(), _message(method, route, expires), hashlib.sha256).digest()


def sign(secret: str, method: str, route: str, expires: int | None = None) -> str:
    """The hex signature of ``method`` (or ``*``), ``route`` and the optional expiry (unix s)."""
    return _digest(secret, method, route, expires).hex()


def _decode_signature(text: str) -> bytes | None:
    text = text.strip()
    try:
        if len(text) == 64:
            return bytes.fromhex(text)
        if len(text) in (43, 44):
            return base64.urlsafe_b64decode(text.rstrip("=") + "=")
    except (ValueError, binascii.Error):
        return None
    return None


def _expiry(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 12:
        raise Unauthenticated("sink URL expiry is not a unix time")
    return int(text)


def verify(secret: str, method: str, route: str, query: Mapping[str, str], now_ms: int) -> None:
    """Raise ``Unauthenticated`` unless ``query`` carries a valid, unexpired signature."""
    given = query.get(SIGN_PARAM)
    if not given:
        raise Unauthenticated("sink URL is not signed")
    expires = _expiry(query.get(EXPIRES_PARAM))
    signature = _decode_signature(given)
    valid = False
    for signed_method in (method, ANY_METHOD):
        # Both comparisons always run: the time taken says nothing about which one matched.
        expected = _digest(secret, signed_method, route, expires)
        valid = hmac.compare_digest(expected, signature or b"\0" * 32) | valid
    if not valid:
        raise Unauthenticated("sink signature does not match")
    if expires is not None and now_ms // 1000 > expires:
        raise Unauthenticated("sink URL has expired")


def signed_path(secret: str, route: str, method: str = "POST", expires: int | None = None) -> str:
    """``/sink/<route>?__sign=...[&__expires=...]``, ready to append to the gateway's base URL."""
    route = canonical_route(route)
    query = {SIGN_PARAM: sign(secret, method, route, expires)}
    if expires is not None:
        query[EXPIRES_PARAM] = str(int(expires))
    return f"/sink/{quote(route, safe='/-_.~')}?{urlencode(query)}"


def decode_body(body: bytes | str | None, content_type: str | None) -> Any:
    """The body as rules see it: JSON or a form as a map, else text (bytes if not UTF-8)."""
    if body is None:
        return None
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"sink body is larger than {MAX_BODY_BYTES} bytes")
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise BadRequest("sink body says JSON but is not valid JSON") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return raw
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True))
    return text


def request_view(method: str, route: str, headers: Mapping[str, str], query: Mapping[str, str],
                 body: Any) -> dict[str, Any]:
    """The request map handed to rules: reserved ``__`` query keys removed, header names lower."""
    return {
        "method": method.upper(),
        "route": canonical_route(route),
        "headers": {str(k).lower(): v for k, v in headers.items()},
        "query": {k: v for k, v in query.items() if k not in RESERVED_PARAMS},
        "body": body,
    }


def request_context(view: Mapping[str, Any]) -> dict[str, Any]:
    """``request.method``, ``request.route``, ``request.headers.<name>``, ``request.query.<key>``
    and ``request.body.<key>`` (a non-map body is ``request.body`` itself)."""
    ctx = mapping_context("request", view)
    ctx["_missing"] = {}
    return ctx
