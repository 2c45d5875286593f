"""The universal envelope: every reply of the REP API and the HTTP gateway.

``failure`` is the one place an exception becomes an error envelope. Errors of the
``brokerflow.errors`` tree carry their own code, title and HTTP status; anything else is a bug,
so it is logged with its traceback under a fresh uuid and the caller sees only ``INTERNAL`` and
that uuid, never the exception's text.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from brokerflow.errors import BrokerflowError, Internal, ValidationFailed

log = logging.getLogger(__name__)

SYSTEM = "brokerflow"


class Reply(NamedTuple):
    """A handler's answer that carries ``messages`` (warnings, notes) besides its body."""

    body: Mapping[str, Any]
    messages: list[dict[str, Any]]


def message(text: str, title: str = "Warning", type: str = "WARNING") -> dict[str, str]:  # noqa: A002
    return {"title": title, "text": text, "type": type}


def ok(body: Mapping[str, Any] | None, messages: Iterable[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """A success envelope; ``messages`` (``{"title","text","type"}``) only when there are some."""
    envelope: dict[str, Any] = {"success": True, "body": dict(body) if body is not None else {}}
    if messages:
        envelope["messages"] = [dict(m) for m in messages]
    return envelope


def wrap(result: Mapping[str, Any] | Reply | None) -> dict[str, Any]:
    """The success envelope of a handler's result (a body, or a ``Reply`` with messages)."""
    if isinstance(result, Reply):
        return ok(result.body, result.messages)
    return ok(result)


def failure(exc: BaseException) -> dict[str, Any]:
    """The error envelope for ``exc``, with a uuid that is also in the log line."""
    error_id = str(uuid.uuid4())
    if isinstance(exc, BrokerflowError):
        error = exc
        if isinstance(exc, Internal):
            log.error("INTERNAL %s: %s", error_id, exc.text, exc_info=exc)
        else:
            log.debug("%s %s: %s", exc.code, error_id, exc.text)
    else:
        log.error("INTERNAL %s: unexpected %s", error_id, type(exc).__name__, exc_info=exc)
        error = Internal(f"unexpected server error; quote {error_id} to find it in the server log")
    body: dict[str, Any] = {
        "uuid": error_id,
        "code": error.code,
        "system": SYSTEM,
        "title": error.title,
        "text": error.text,
    }
    if isinstance(error, ValidationFailed):
        body["details"] = [dict(d) for d in error.details]
    return {"success": False, "error": body}


def http_status(exc: BaseException) -> int:
    return exc.http_status if isinstance(exc, BrokerflowError) else Internal.http_status


def _subclasses(cls: type[BrokerflowError]) -> Iterable[type[BrokerflowError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def status_of(envelope: Mapping[str, Any]) -> int:
    """The HTTP status of an envelope: 200 on success, else its error code's status.

    The code-to-status table is read off the exception tree itself, so a new error class
    brings its status with it.
    """
    if envelope.get("success"):
        return 200
    code = (envelope.get("error") or {}).get("code")
    for cls in _subclasses(BrokerflowError):
        if cls.code == code:
            return cls.http_status
    return Internal.http_status
