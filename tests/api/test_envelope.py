"""The universal envelope and the error table."""

from __future__ import annotations

import logging
import re

import pytest

from brokerflow import errors
from brokerflow.api.envelope import failure, http_status, ok, status_of

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_ok_has_body_and_messages_only_when_given():
    assert ok({"a": 1}) == {"success": True, "body": {"a": 1}}
    assert ok(None) == {"success": True, "body": {}}
    msg = {"title": "t", "text": "x", "type": "INFO"}
    assert ok({}, [msg]) == {"success": True, "body": {}, "messages": [msg]}


@pytest.mark.parametrize(
    ("exc", "code", "status"),
    [
        (errors.BadRequest("b"), "BAD_REQUEST", 400),
        (errors.Unauthenticated("u"), "UNAUTHENTICATED", 401),
        (errors.AccessDenied("a"), "ACCESS_DENIED", 403),
        (errors.UnknownCommand("c"), "UNKNOWN_COMMAND", 400),
        (errors.NotFound("n"), "NOT_FOUND", 404),
        (errors.Conflict("c"), "CONFLICT", 409),
        (errors.EventNotAvailable("e"), "EVENT_NOT_AVAILABLE", 409),
        (errors.ProcessEnded("p"), "PROCESS_ENDED", 409),
        (errors.Rejected("r"), "REJECTED", 422),
        (errors.Internal("i"), "INTERNAL", 500),
    ],
)
def test_each_error_class_becomes_its_code_and_status(exc, code, status):
    envelope = failure(exc)
    assert envelope["success"] is False
    assert set(envelope["error"]) == {"uuid", "code", "system", "title", "text"}
    assert envelope["error"]["code"] == code
    assert envelope["error"]["system"] == "brokerflow"
    assert envelope["error"]["title"] == exc.title
    assert envelope["error"]["text"] == exc.text
    assert UUID.match(envelope["error"]["uuid"])
    assert http_status(exc) == status
    assert status_of(envelope) == status


def test_validation_failed_carries_its_details():
    exc = errors.ValidationFailed("bad", details=[{"path": "brand", "message": "is required"}])
    envelope = failure(exc)
    assert envelope["error"]["code"] == "VALIDATION_FAILED"
    assert envelope["error"]["details"] == [{"path": "brand", "message": "is required"}]
    assert status_of(envelope) == 422


def test_unexpected_exception_is_internal_logged_with_its_uuid_and_never_leaked(caplog):
    with caplog.at_level(logging.ERROR, logger="brokerflow.api.envelope"):
        envelope = failure(KeyError("secret-table-name"))
    error = envelope["error"]
    assert error["code"] == "INTERNAL"
    assert "secret-table-name" not in error["text"]
    assert error["uuid"] in error["text"]
    assert error["uuid"] in caplog.text
    assert "KeyError" in caplog.text and "secret-table-name" in caplog.text
    assert http_status(KeyError()) == 500


def test_each_failure_gets_a_fresh_uuid():
    assert failure(errors.NotFound())["error"]["uuid"] != failure(errors.NotFound())["error"]["uuid"]


def test_success_status_is_200():
    assert status_of(ok({})) == 200
