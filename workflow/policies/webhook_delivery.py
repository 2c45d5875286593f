"""Webhook delivery policy (PROTOCOL section 10): retries, backoff, signing, write-only headers.

Pure functions only: the actors (``actors.webhook``, ``actors.webhook_retries``) bring the
clock, the random source, the sockets and the storage.

- **Retries**: ``retries`` (0..20, default 5) more attempts after the first; attempt *n*'s
  delay is a random fraction (full jitter) of ``backoff_s * 2**(n-1)``, the ceiling capped at
  600 s and the delay never under 0.05 s. A ``Retry-After`` (seconds or an HTTP date) on a 429
  or 503 is honoured as a lower bound, itself capped at 600 s.
- **What is retried**: connection errors (DNS included), timeouts, TLS errors other than a
  refused certificate, 408, 429 and 5xx. Final: every other 4xx, a redirect, a refused target
  (SSRF guard), a refused certificate, a request that could never be sent (bad URL, method,
  header, unknown secret).
- **Signing** (Standard Webhooks): ``webhook-signature: v1,<base64 HMAC-SHA256(key,
  "{id}.{timestamp}.{body}")>``. The key: for a secret written ``whsec_<base64>`` the bytes
  that base64 decodes to (the Standard Webhooks convention); for any other secret its UTF-8
  bytes, as written.
- **Write-only headers**: the values of ``Authorization``, ``Proxy-Authorization``,
  ``Cookie``, ``X-Api-Key`` and of any header whose name contains ``token`` or ``secret`` are
  shown as ``***`` by every read of a rule; an update that sends ``***`` keeps what is stored.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from brokerflow.errors import ValidationFailed

DEFAULT_RETRIES, MAX_RETRIES = 5, 20
DEFAULT_BACKOFF_S, MIN_BACKOFF_S = 2.0, 0.05
MAX_DELAY_S = 600.0
MASK = "***"
SECRET_PREFIX = "whsec_"
SECRET_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

# Outcomes of one attempt.
SUCCESS, RETRY, FINAL = "success", "retry", "final"
# Error kinds the sender reports (``bus.webhook_sender.WebhookResult.kind``).
KIND_OK, KIND_HTTP, KIND_REDIRECT = "ok", "http", "redirect"
KIND_CONNECT, KIND_TIMEOUT, KIND_TLS, KIND_DNS = "connect", "timeout", "tls", "dns"
KIND_CERTIFICATE, KIND_REFUSED, KIND_INVALID = "certificate", "refused", "invalid"
RETRYABLE_KINDS = frozenset({KIND_CONNECT, KIND_TIMEOUT, KIND_TLS, KIND_DNS})
RETRYABLE_STATUSES = frozenset({408, 429})
RETRY_AFTER_STATUSES = frozenset({429, 503})

_WRITE_ONLY = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
_WRITE_ONLY_WORDS = ("token", "secret")


# -- params -----------------------------------------------------------------------------------
def retries_of(params: Mapping[str, Any]) -> int:
    """``retries`` of an action's params: 0..20, the default 5 when absent or junk."""
    value = params.get("retries")
    if isinstance(value, bool) or not isinstance(value, int):
        return DEFAULT_RETRIES
    return min(max(value, 0), MAX_RETRIES)


def backoff_of(params: Mapping[str, Any]) -> float:
    """``backoff_s``: at least 0.05, the default 2.0 when absent or junk."""
    value = params.get("backoff_s")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return DEFAULT_BACKOFF_S
    return min(max(float(value), MIN_BACKOFF_S), MAX_DELAY_S)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def param_problems(params: Mapping[str, Any], secret_names: Any = None) -> list[tuple[str, str]]:
    """``(param, message)`` for each ``retries``, ``backoff_s`` or ``secret`` out of range or
    malformed (a value of the wrong type is the caller's generic type check's to report).

    ``secret_names``: the configured signing secrets (a collection of names); ``None`` when
    the caller cannot know them, and then a name is only checked for its form.
    """
    problems = []
    retries = params.get("retries")
    if _number(retries) and isinstance(retries, int) and not 0 <= retries <= MAX_RETRIES:
        problems.append(("retries", f"must be an integer from 0 to {MAX_RETRIES}, got {retries!r}"))
    backoff = params.get("backoff_s")
    if _number(backoff) and not (math.isfinite(backoff) and backoff >= MIN_BACKOFF_S):
        problems.append(("backoff_s", f"must be a number of seconds >= {MIN_BACKOFF_S} (delays are capped at "
                                      f"{MAX_DELAY_S:.0f}), got {backoff!r}"))
    secret = params.get("secret")
    if isinstance(secret, str):
        if not SECRET_NAME.fullmatch(secret):
            problems.append(("secret", "must be the name of a signing secret (letters, digits, _ . -)"))
        elif secret_names is not None and secret not in secret_names:
            known = ", ".join(sorted(secret_names)) or "none"
            problems.append(("secret", f"no signing secret named {secret!r} is configured "
                                       f"(serve --webhook-secret NAME=SECRET; configured: {known})"))
    return problems


# -- backoff ----------------------------------------------------------------------------------
def backoff_ceiling_s(attempt: int, backoff_s: float) -> float:
    """The most attempt ``attempt`` (1 = the first that failed) waits before the next: doubling, capped."""
    exponent = min(max(attempt, 1) - 1, 64)  # 2**64 * 0.05 is far past the cap already
    return min(MAX_DELAY_S, max(MIN_BACKOFF_S, backoff_s) * (2.0 ** exponent))


def retry_delay_s(attempt: int, backoff_s: float, rand: Callable[[], float],
                  retry_after_s: float | None = None) -> float:
    """The wait after failed attempt ``attempt``: full jitter under the ceiling, never under
    0.05 s; a ``Retry-After`` the receiver asked for is a lower bound; everything capped at 600 s."""
    fraction = min(max(float(rand()), 0.0), 1.0)
    delay = max(MIN_BACKOFF_S, fraction * backoff_ceiling_s(attempt, backoff_s))
    if retry_after_s is not None and retry_after_s > delay:
        delay = retry_after_s
    return min(delay, MAX_DELAY_S)


def parse_retry_after(value: Any, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date), capped at
    600 s; ``None`` for a missing, negative or unreadable value."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isdigit():
        return min(float(int(text[:12])), MAX_DELAY_S)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    seconds = moment.timestamp() - now_s
    return min(max(seconds, 0.0), MAX_DELAY_S)


# -- classification ---------------------------------------------------------------------------
def classify(kind: str, status: int | None) -> str:
    """``success``, ``retry`` or ``final`` for one attempt's error kind and HTTP status."""
    if kind == KIND_OK:
        return SUCCESS
    if kind == KIND_HTTP and status is not None:
        if status in RETRYABLE_STATUSES or 500 <= status <= 599:
            return RETRY
        return FINAL
    return RETRY if kind in RETRYABLE_KINDS else FINAL


def wants_retry_after(status: int | None) -> bool:
    return status in RETRY_AFTER_STATUSES


# -- signing ----------------------------------------------------------------------------------
def signing_key(secret: str) -> bytes:
    """The HMAC key of a configured secret: ``whsec_<base64>`` -> the decoded bytes; else the
    secret's UTF-8 bytes. ValueError for a ``whsec_`` secret that is not base64 (never quoting it)."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("a signing secret must not be empty")
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX):]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
        if not key:
            raise ValueError("a whsec_ secret must not be empty after the prefix")
        return key
    return secret.encode("utf-8")


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` (Standard Webhooks)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def parse_secret_option(text: str) -> tuple[str, str]:
    """``NAME=SECRET`` -> (name, secret); ValueError naming what is wrong, never quoting the secret."""
    name, eq, secret = str(text).partition("=")
    name = name.strip()
    if not eq or not secret:
        raise ValueError("must be NAME=SECRET")
    if not SECRET_NAME.fullmatch(name):
        raise ValueError("NAME must be 1-64 letters, digits, '_', '.' or '-'")
    signing_key(secret)
    return name, secret


# -- write-only headers -----------------------------------------------------------------------
def is_write_only_header(name: Any) -> bool:
    lowered = str(name).lower()
    return lowered in _WRITE_ONLY or any(word in lowered for word in _WRITE_ONLY_WORDS)


def _masked_headers(headers: Any) -> Any:
    if not isinstance(headers, Mapping):
        return headers
    return {name: MASK if is_write_only_header(name) and value is not None else value
            for name, value in headers.items()}


def mask_action(action: Any) -> Any:
    """An action with the values of its write-only headers replaced by ``***``."""
    if not isinstance(action, Mapping):
        return action
    params = action.get("params")
    if not isinstance(params, Mapping) or not isinstance(params.get("headers"), Mapping):
        return action
    return {**action, "params": {**params, "headers": _masked_headers(params["headers"])}}


def mask_actions(actions: Any) -> Any:
    return [mask_action(a) for a in actions] if isinstance(actions, list) else actions


def mask_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a rule as every read shows it: write-only header values masked."""
    out = dict(rule)
    if "actions" in out:
        out["actions"] = mask_actions(out["actions"])
    return out


def mask_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """A run as the run log shows it: header values an action reports (``sink.respond``) masked."""
    out = dict(run)
    actions = out.get("actions")
    if isinstance(actions, list) and any(isinstance(a, Mapping) and isinstance(a.get("headers"), Mapping)
                                         for a in actions):
        out["actions"] = [{**a, "headers": _masked_headers(a["headers"])}
                          if isinstance(a, Mapping) and isinstance(a.get("headers"), Mapping) else a
                          for a in actions]
    return out


def _stored_value(stored: Any, index: int, kind: Any, url: Any, name: str) -> str | None:
    """The stored value of header ``name`` (any case) for the action at ``index`` of ``stored``:
    the same index if it is the same type, else the only stored action of that type and URL."""
    if not isinstance(stored, list):
        return None
    candidates = []
    if index < len(stored) and isinstance(stored[index], Mapping) and stored[index].get("type") == kind:
        candidates.append(stored[index])
    candidates += [a for a in stored if isinstance(a, Mapping) and a.get("type") == kind
                   and isinstance(a.get("params"), Mapping) and a["params"].get("url") == url]
    for action in candidates:
        headers = action.get("params", {}).get("headers") if isinstance(action.get("params"), Mapping) else None
        if isinstance(headers, Mapping):
            for stored_name, value in headers.items():
                if str(stored_name).lower() == name.lower() and value != MASK:
                    return value
    return None


def keep_masked(actions: Any, stored: Any, path: str = "actions") -> Any:
    """``actions`` with every write-only header sent as ``***`` given its stored value back.

    ValidationFailed (every such header at once) when there is no stored value to keep.
    """
    if not isinstance(actions, list):
        return actions
    out, problems = [], []
    for index, action in enumerate(actions):
        params = action.get("params") if isinstance(action, Mapping) else None
        headers = params.get("headers") if isinstance(params, Mapping) else None
        if not isinstance(headers, Mapping) or MASK not in headers.values():
            out.append(action)
            continue
        kept = {}
        for name, value in headers.items():
            if value == MASK and is_write_only_header(name):
                value = _stored_value(stored, index, action.get("type"), params.get("url"), str(name))
                if value is None:
                    problems.append({"path": f"{path}[{index}].params.headers.{name}",
                                     "message": f"{MASK!r} keeps the stored value, but none is stored"})
            kept[name] = value
        out.append({**action, "params": {**params, "headers": kept}})
    if problems:
        raise ValidationFailed("; ".join(f"{p['path']}: {p['message']}" for p in problems), details=problems)
    return out


def _states(flow: Any) -> Any:
    return flow.get("states") if isinstance(flow, Mapping) and isinstance(flow.get("states"), Mapping) else None


def mask_flow(flow: Mapping[str, Any]) -> dict[str, Any]:
    """A Workflow Machine flow as every read shows it: its states' write-only header values masked."""
    out = dict(flow)
    states = _states(flow)
    if states is not None:
        out["states"] = {name: {**state, "actions": mask_actions(state["actions"])}
                         if isinstance(state, Mapping) and "actions" in state else state
                         for name, state in states.items()}
    return out


def keep_masked_flow(flow: Mapping[str, Any], stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """``keep_masked`` for each state's actions against the same state of the stored flow."""
    out = dict(flow)
    states, before = _states(flow), _states(stored) or {}
    if states is not None:
        kept = {}
        for name, state in states.items():
            if isinstance(state, Mapping) and isinstance(state.get("actions"), list):
                previous = before.get(name) if isinstance(before.get(name), Mapping) else {}
                state = {**state, "actions": keep_masked(state["actions"], previous.get("actions") or [],
                                                         f"states.{name}.actions")}
            kept[name] = state
        out["states"] = kept
    return out


def unknown_secrets(actions: Any, secret_names: Any, path: str = "actions") -> list[dict[str, str]]:
    """Problems for each ``webhook.send`` whose ``secret`` names no configured secret."""
    problems = []
    for index, action in enumerate(actions if isinstance(actions, list) else []):
        params = action.get("params") if isinstance(action, Mapping) else None
        if isinstance(params, Mapping) and action.get("type") == "webhook.send":
            for name, message in param_problems({"secret": params.get("secret")}, secret_names):
                problems.append({"path": f"{path}.{index}.params.{name}", "message": message})
    return problems
