"""The Workflow Machine commands over the API, driven by a small real process handler.

The handler runs the pure machine on a thread pool and persists to the real store — the shape
of the engine's process pool without its actors — so replies really arrive later, as Futures.
"""

from __future__ import annotations

import pytest

from brokerflow.errors import BadRequest
from tests.api.conftest import ROLES


def test_start_event_history_available_events_and_end(machine_api):
    api = machine_api
    started = api.body("START", {"name": "signup", "input": {"email": "a@b.c"}})
    assert started["result"] == "SUCCESS"
    assert started["state"] == "personal"
    assert started["hints"]["boStepCode"] == "PD"
    pid = started["pid"]
    assert api.body("AVAILABLE_EVENTS", {"pid": pid})["events"] == ["next"]
    moved = api.body("EVENT", {"pid": pid, "name": "next", "input": {"value": "x"}})
    assert moved["state"] == "docs"
    step_id = moved["history"][0]["id"]
    assert api.body("HISTORY", {"pid": pid, "name": step_id})["step"]["state"] == "personal"
    back = api.body("ROLLBACK", {"pid": pid, "name": step_id})
    assert back["state"] == "personal"
    api.body("EVENT", {"pid": pid, "name": "next"})
    assert api.body("EVENT", {"pid": pid, "name": "submit"}) == {"pid": pid, "result": "END"}


def test_an_event_the_state_does_not_have_is_event_not_available(machine_api):
    pid = machine_api.body("START", {"name": "signup"})["pid"]
    error = machine_api.error("EVENT", {"pid": pid, "name": "fly"})
    assert error["code"] == "EVENT_NOT_AVAILABLE"


def test_commands_on_an_ended_process_are_process_ended(machine_api):
    pid = machine_api.body("START", {"name": "signup"})["pid"]
    assert machine_api.body("ABORT", {"pid": pid})["result"] == "END"
    assert machine_api.error("EVENT", {"pid": pid, "name": "next"})["code"] == "PROCESS_ENDED"


def test_exit_and_restore(machine_api):
    restored = machine_api.body("RESTORE", {"name": "signup", "input": {"state": "docs"}})
    assert restored["state"] == "docs"
    assert machine_api.body("EXIT", {"pid": restored["pid"]})["result"] == "END"


def test_unknown_process_and_flow_are_not_found(machine_api):
    assert machine_api.error("EVENT", {"pid": "nope", "name": "next"})["code"] == "NOT_FOUND"
    assert machine_api.error("START", {"name": "nope"})["code"] == "NOT_FOUND"


@pytest.mark.parametrize("role", ROLES)
def test_any_valid_token_drives_processes_and_the_handler_sees_the_principal(machine_api, role):
    token = machine_api.tokens[role]
    assert machine_api.body("START", {"name": "signup"}, token=token)["result"] == "SUCCESS"
    cmd, params, principal = machine_api.seen[-1]
    assert (cmd, params) == ("START", {"name": "signup"})
    assert principal.role == role


def test_process_commands_need_a_token(machine_api):
    assert machine_api.error("START", {"name": "signup"}, token=None)["code"] == "UNAUTHENTICATED"
    assert machine_api.seen == []


def test_params_are_checked_and_an_integer_pid_is_its_digits(machine_api):
    error = machine_api.error("EVENT", {"pid": 1.5, "name": "next"})
    assert (error["code"], error["details"][0]["path"]) == ("VALIDATION_FAILED", "pid")
    error = machine_api.error("EVENT", {"pid": "x", "nmae": "next"})
    assert (error["code"], error["details"][0]["path"]) == ("VALIDATION_FAILED", "nmae")
    machine_api.error("AVAILABLE_EVENTS", {"pid": 42})
    assert machine_api.seen[-1][1] == {"pid": "42"}


def test_a_handler_that_raises_at_once_is_answered_too(api):
    def refuse(cmd, params, principal):
        raise BadRequest("pid is required")

    api.services.process_handler = refuse
    assert api.error("EVENT", {"name": "x"})["code"] == "BAD_REQUEST"


def test_without_a_process_handler_the_machine_is_internal_with_a_clear_text(api):
    error = api.error("START", {"name": "signup"})
    assert error["code"] == "INTERNAL"
    assert error["text"] == "not available in this process: the Workflow Machine"


def test_a_handler_that_cannot_check_brand_scope_refuses_scoped_tokens(machine_api):
    """The engine's process pool takes a guard; a handler that takes none must not let a scoped
    token reach every brand's processes."""
    error = machine_api.error("START", {"name": "signup"}, token=machine_api.alpha["SESSION_ADMIN"])
    assert error["code"] == "ACCESS_DENIED" and "brand" in error["text"]
    assert machine_api.seen == []


def test_the_process_list_is_newest_first_and_a_brand_token_sees_its_brand_only(api):
    processes = api.services.store.processes
    for pid, brand, status in (("p-alpha", "alpha", "active"), ("p-beta", "beta", "active"),
                               ("p-done", "alpha", "ended"), ("p-none", None, "active")):
        processes.create({"pid": pid, "brand": brand, "status": status, "input": {},
                          "stack": [{"flow": "signup", "state": "docs"}]})
    listed = api.body("MngGetProcesses")["processes"]
    assert [p["pid"] for p in listed] == ["p-alpha", "p-beta", "p-done", "p-none"]
    assert listed[0] == {"pid": "p-alpha", "brand": "alpha", "flow": "signup", "state": "docs", "status": "active",
                         "updated_at": listed[0]["updated_at"]}
    assert isinstance(listed[0]["updated_at"], str)
    scoped = api.body("MngGetProcesses", {"ended": False}, token=api.alpha["SESSION_DEALER"])["processes"]
    assert [p["pid"] for p in scoped] == ["p-alpha"]
    assert api.error("MngGetProcesses", {"limit": 0})["code"] == "VALIDATION_FAILED"
