"""Every Workflow Machine command and every reply kind on the real engine, over REP and HTTP.

Each test takes ``door`` and so runs twice: once over the REP API, once over the HTTP gateway
(where an error also sets the HTTP status). The flows are in ``tests/processes/flows.py``.
"""

from __future__ import annotations

from tests.processes.flows import BANK_URL, HINTS

BREADCRUMB = {"id", "flow", "flowId", "state", "title", "value", "status"}


def crumbs(body: dict) -> list[tuple[str, str, int, str]]:
    """The history as ``(flow, state, flowId, status)`` tuples."""
    return [(step["flow"], step["state"], step["flowId"], step["status"]) for step in body["history"]]


def to_review(door, **start_input) -> str:
    """A process of ``onboarding`` waiting in ``doc_review.look`` (two subflows deep)."""
    pid = door.ok("START", name="onboarding", input={"email": "a@b.c", **start_input})["pid"]
    door.ok("EVENT", pid=pid, name="next")
    door.ok("EVENT", pid=pid, name="submit")
    door.ok("EVENT", pid=pid, name="uploaded")
    return pid


def test_start_answers_success_field_for_field(door):
    body = door.ok("START", name="onboarding", input={"email": "a@b.c"})
    assert set(body) == {"result", "pid", "flow", "state", "output", "hints", "history"}
    assert body["result"] == "SUCCESS"
    assert isinstance(body["pid"], str) and body["pid"]
    assert (body["flow"], body["state"]) == ("onboarding", "personal")
    assert body["output"] == {"email": "a@b.c"}
    assert body["hints"] == {"boStepCode": "PD", "hints": HINTS}
    assert body["history"] == [{"id": "h1", "flow": "onboarding", "flowId": 1, "state": "personal",
                                "title": "Personal data", "value": None, "status": "active"}]


def test_event_moves_on_and_accumulates_the_input_as_output(door):
    pid = door.ok("START", name="onboarding", input={"email": "a@b.c"})["pid"]
    body = door.ok("EVENT", pid=pid, name="next", input={"phone": "123", "value": "filled"})
    assert (body["result"], body["state"]) == ("SUCCESS", "docs")
    assert body["output"] == {"email": "a@b.c", "phone": "123", "value": "filled"}
    assert body["hints"] == {"boStepCode": None, "hints": []}
    assert [(s["state"], s["value"], s["status"]) for s in body["history"]] == [
        ("personal", None, "done"), ("docs", "filled", "active")]
    assert all(set(step) == BREADCRUMB for step in body["history"])


def test_a_subflow_inside_a_subflow_shows_each_flow_with_its_own_flow_id(door):
    pid = to_review(door)
    body = door.ok("AVAILABLE_EVENTS", pid=pid)
    assert (body["flow"], body["state"], body["events"]) == ("doc_review", "look", ["accept", "refuse"])
    assert crumbs(body) == [("onboarding", "personal", 1, "done"), ("onboarding", "docs", 1, "done"),
                            ("kyc_check", "upload", 2, "done"), ("doc_review", "look", 3, "active")]


def test_a_child_final_state_is_the_parents_event_up_to_an_external_state(door):
    pid = to_review(door)
    entered = door.ok("EVENT", pid=pid, name="accept")  # ok -> kyc_check approved -> onboarding bank
    assert entered == {"result": "EXTERNAL_ENTER", "pid": pid, "url": BANK_URL}
    body = door.ok("AVAILABLE_EVENTS", pid=pid)
    assert (body["flow"], body["state"], body["events"]) == ("onboarding", "bank", ["return"])
    assert door.ok("EVENT", pid=pid, name="return") == {"pid": pid, "result": "END"}


def test_a_child_outcome_can_send_the_parent_back(door):
    pid = to_review(door)
    body = door.ok("EVENT", pid=pid, name="refuse")  # doc_review bad -> kyc_check upload again
    assert (body["flow"], body["state"]) == ("kyc_check", "upload")
    assert crumbs(body)[-1] == ("kyc_check", "upload", 2, "active")


def test_a_process_started_with_a_return_url_answers_external_return_when_it_ends(door):
    url = "https://crm.example/back?x=1"
    pid = to_review(door, returnUrl=url)
    door.ok("EVENT", pid=pid, name="accept")
    assert door.ok("EVENT", pid=pid, name="return") == {"result": "EXTERNAL_RETURN", "pid": pid, "url": url}
    door.fail("EVENT", "PROCESS_ENDED", 409, pid=pid, name="return")


def test_exit_in_a_child_returns_exit_to_its_parent_and_in_the_top_flow_ends(door):
    pid = to_review(door)
    body = door.ok("EXIT", pid=pid)  # doc_review -> kyc_check review on exit: upload
    assert (body["flow"], body["state"]) == ("kyc_check", "upload")
    body = door.ok("EXIT", pid=pid)  # kyc_check -> onboarding check on exit: docs
    assert (body["flow"], body["state"]) == ("onboarding", "docs")
    assert door.ok("EXIT", pid=pid) == {"pid": pid, "result": "END"}


def test_exit_of_the_top_flow_with_a_return_url_is_external_return(door):
    pid = door.ok("START", name="onboarding", input={"returnUrl": "https://crm.example/r"})["pid"]
    assert door.ok("EXIT", pid=pid) == {"result": "EXTERNAL_RETURN", "pid": pid, "url": "https://crm.example/r"}


def test_abort_ends_every_flow_at_once(door):
    pid = to_review(door)
    assert door.ok("ABORT", pid=pid) == {"pid": pid, "result": "END"}
    door.fail("EVENT", "PROCESS_ENDED", 409, pid=pid, name="accept")
    door.fail("ABORT", "PROCESS_ENDED", 409, pid=pid)
    assert door.ok("AVAILABLE_EVENTS", pid=pid) == {"pid": pid, "result": "END", "events": []}
    assert door.ok("HISTORY", pid=pid, name="h4")["step"]["status"] == "done"


def test_rollback_from_a_grandchild_to_the_top_flow_marks_the_later_steps_rolled_back(door):
    pid = to_review(door)
    body = door.ok("ROLLBACK", pid=pid, name="h2")
    assert (body["result"], body["flow"], body["state"]) == ("SUCCESS", "onboarding", "docs")
    assert crumbs(body) == [("onboarding", "personal", 1, "done"), ("onboarding", "docs", 1, "active"),
                            ("kyc_check", "upload", 2, "rolled_back"), ("doc_review", "look", 3, "rolled_back")]
    assert door.ok("AVAILABLE_EVENTS", pid=pid)["events"] == ["back", "submit"]
    again = door.ok("EVENT", pid=pid, name="submit")  # a fresh child: a new flowId
    assert crumbs(again)[-1] == ("kyc_check", "upload", 4, "active")
    door.fail("ROLLBACK", "NOT_FOUND", 404, pid=pid, name="h3")  # rolled back steps are gone


def test_rollback_from_the_top_flow_into_a_child_restores_the_child(door):
    pid = to_review(door)
    door.ok("EVENT", pid=pid, name="accept")  # now in onboarding.bank (EXTERNAL_ENTER)
    body = door.ok("ROLLBACK", pid=pid, name="h3")
    assert (body["flow"], body["state"]) == ("kyc_check", "upload")
    assert door.ok("EVENT", pid=pid, name="uploaded")["state"] == "look"
    assert door.ok("EXIT", pid=pid)["state"] == "upload"  # the restored child still has its parent


def test_rollback_to_an_external_state_answers_external_enter(door):
    pid = to_review(door)
    door.ok("EVENT", pid=pid, name="accept")  # onboarding.bank is step h5
    assert door.ok("ROLLBACK", pid=pid, name="h5") == {"result": "EXTERNAL_ENTER", "pid": pid, "url": BANK_URL}
    assert door.ok("ROLLBACK", pid=pid, name="h1")["state"] == "personal"
    door.fail("ROLLBACK", "NOT_FOUND", 404, pid=pid, name="h5")


def test_rollback_recomputes_the_output_from_the_steps_it_keeps(door):
    pid = door.ok("START", name="onboarding", input={"email": "a@b.c"})["pid"]
    door.ok("EVENT", pid=pid, name="next", input={"phone": "123"})
    assert door.ok("ROLLBACK", pid=pid, name="h1")["output"] == {"email": "a@b.c"}


def test_restore_starts_in_the_state_named_by_the_input(door):
    body = door.ok("RESTORE", name="onboarding", input={"state": "docs", "email": "a@b.c"})
    assert (body["result"], body["state"], body["output"]) == ("SUCCESS", "docs", {"email": "a@b.c"})
    assert crumbs(body) == [("onboarding", "docs", 1, "active")]
    nested = door.ok("RESTORE", name="onboarding", input={"state": "check"})  # into a subflow state
    assert (nested["flow"], nested["state"]) == ("kyc_check", "upload")
    external = door.ok("RESTORE", name="onboarding", input={"state": "bank"})
    assert external["result"] == "EXTERNAL_ENTER" and external["url"] == BANK_URL
    door.fail("RESTORE", "NOT_FOUND", 404, name="onboarding", input={"state": "nowhere"})
    error = door.fail("RESTORE", "VALIDATION_FAILED", 422, name="onboarding", input={})
    assert error["details"] == [{"path": "input.state", "message": "is required: the state to restore to"}]


def test_history_answers_the_step_with_the_input_it_received(door):
    pid = door.ok("START", name="onboarding", input={"email": "a@b.c"})["pid"]
    door.ok("EVENT", pid=pid, name="next", input={"value": 42})
    body = door.ok("HISTORY", pid=pid, name="h2")
    assert (body["result"], body["state"]) == ("SUCCESS", "docs")
    step = body["step"]
    assert {k: step[k] for k in ("id", "flow", "flowId", "state", "title", "value", "status")} == {
        "id": "h2", "flow": "onboarding", "flowId": 1, "state": "docs", "title": "Documents",
        "value": "42", "status": "active"}
    assert (step["input"], step["event"]) == ({"value": 42}, "next")
    assert isinstance(step["at"], int)
    door.fail("HISTORY", "NOT_FOUND", 404, pid=pid, name="h9")


def test_unknown_process_flow_or_state_is_not_found(door):
    door.fail("EVENT", "NOT_FOUND", 404, pid="no-such-pid", name="next")
    door.fail("HISTORY", "NOT_FOUND", 404, pid="no-such-pid", name="h1")
    door.fail("AVAILABLE_EVENTS", "NOT_FOUND", 404, pid="no-such-pid")
    door.fail("START", "NOT_FOUND", 404, name="no_such_flow")


def test_an_event_the_state_has_no_transition_for_is_event_not_available(door):
    pid = door.ok("START", name="onboarding")["pid"]
    error = door.fail("EVENT", "EVENT_NOT_AVAILABLE", 409, pid=pid, name="submit")
    assert "personal" in error["text"]
    door.fail("EVENT", "EVENT_NOT_AVAILABLE", 409, pid=pid, name="exit")  # EXIT is a command
    assert door.ok("EVENT", pid=pid, name="next")["state"] == "docs"  # the refusal changed nothing


def test_missing_names_and_pids_and_a_non_map_input_are_bad_requests(door):
    pid = door.ok("START", name="onboarding")["pid"]
    door.fail("EVENT", "BAD_REQUEST", 400, pid=pid)
    door.fail("ROLLBACK", "BAD_REQUEST", 400, pid=pid)
    door.fail("HISTORY", "BAD_REQUEST", 400, pid=pid)
    door.fail("START", "BAD_REQUEST", 400)
    door.fail("EVENT", "BAD_REQUEST", 400, name="next")
    door.fail("EVENT", "BAD_REQUEST", 400, pid=pid, name="next", input=[1, 2])
    assert door.ok("AVAILABLE_EVENTS", pid=pid)["state"] == "personal"


def test_a_missing_or_unknown_token_is_unauthenticated(door):
    door.fail("START", "UNAUTHENTICATED", 401, name="onboarding", token=None)
    door.fail("START", "UNAUTHENTICATED", 401, name="onboarding", token="not-a-token")
    pid = door.ok("START", name="onboarding")["pid"]
    door.fail("EVENT", "UNAUTHENTICATED", 401, pid=pid, name="next", token="not-a-token")
    assert door.ok("AVAILABLE_EVENTS", pid=pid)["state"] == "personal"


def test_a_process_started_through_one_door_is_driven_through_the_other(running, door):
    other = running.door("http" if door.kind == "rep" else "rep", token=running.admin)
    pid = door.ok("START", name="onboarding")["pid"]
    assert other.ok("EVENT", pid=pid, name="next")["state"] == "docs"
    assert door.ok("AVAILABLE_EVENTS", pid=pid)["events"] == ["back", "submit"]
