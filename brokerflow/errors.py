"""The one exception tree of brokerflow.

Every failure a user can see is a ``BrokerflowError`` subclass whose ``code`` is the
management API's error code, so one table (``api.envelope``) turns any of them into the
universal error envelope and an HTTP status. Errors carry their data as attributes.
"""

from __future__ import annotations

from typing import Any


class BrokerflowError(Exception):
    """Root of every error brokerflow raises on purpose."""

    code = "INTERNAL"
    title = "Internal error"
    http_status = 500

    def __init__(self, text: str = "", *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(text or self.title)
        self.text = text or self.title
        self.details = details or []


class BadRequest(BrokerflowError):
    """The request could not be decoded or lacks what every request needs."""

    code, title, http_status = "BAD_REQUEST", "Bad request", 400


class Unauthenticated(BrokerflowError):
    """No token, an unknown token, or a bad sink signature."""

    code, title, http_status = "UNAUTHENTICATED", "Unauthenticated", 401


class AccessDenied(BrokerflowError):
    """The caller's role or brand scope does not allow this."""

    code, title, http_status = "ACCESS_DENIED", "Access denied", 403


class UnknownCommand(BrokerflowError):
    """The ``cmd`` names no command."""

    code, title, http_status = "UNKNOWN_COMMAND", "Unknown command", 400


class ValidationFailed(BrokerflowError):
    """A definition or parameter is invalid; ``details`` lists every problem with its path."""

    code, title, http_status = "VALIDATION_FAILED", "Validation failed", 422


class NotFound(BrokerflowError):
    """The addressed rule, record, flow or process does not exist."""

    code, title, http_status = "NOT_FOUND", "Not found", 404


class Conflict(BrokerflowError):
    """Optimistic concurrency: the caller's ``version`` is stale."""

    code, title, http_status = "CONFLICT", "Conflict", 409


class EventNotAvailable(BrokerflowError):
    """The process's current state has no transition for this event."""

    code, title, http_status = "EVENT_NOT_AVAILABLE", "Event not available", 409


class ProcessEnded(BrokerflowError):
    """The process has already ended; it takes no more commands that change it."""

    code, title, http_status = "PROCESS_ENDED", "Process ended", 409


class Rejected(BrokerflowError):
    """A before-hook rule rejected the operation (``operation.reject``)."""

    code, title, http_status = "REJECTED", "Operation rejected", 422


class Internal(BrokerflowError):
    """An unexpected failure; the envelope's uuid finds it in the log."""


class ActionFailed(BrokerflowError):
    """A rule or state action could not be carried out; the run is marked failed."""

    code, title, http_status = "ACTION_FAILED", "Action failed", 500


class MalformedEvent(BrokerflowError):
    """A bus frame that is not a valid event; counted and logged, never fatal."""

    code, title, http_status = "MALFORMED_EVENT", "Malformed event", 400
