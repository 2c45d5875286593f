"""Process state as plain data: breadcrumbs, the end of a process, history steps and rollback."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from brokerflow.errors import NotFound
from brokerflow.workflow.machine.commands import history_step
from brokerflow.workflow.machine.state import clone_json, set_status, state_json, working_copy
from tests.workflow.machine.test_commands import BANK_URL, KYC, ONBOARDING, Process, entered, library


@pytest.mark.parametrize(("value", "shown"), [("x", "x"), (5, "5"), (1.5, "1.5"), (True, "next"),
                                              (None, "next"), ({"a": 1}, "next")])
def test_breadcrumb_value_is_the_input_value_else_the_event(value: Any, shown: str) -> None:
    body = Process(library()).send("EVENT", "next", {"value": value}).body
    assert body["history"][-1]["value"] == shown


def test_ending_records_the_final_step_and_how_it_ended() -> None:
    proc = Process(library())
    step = proc.run("next", "skip")
    assert entered(step) == ["onboarding.done"] and proc.statuses() == ["done", "done", "done"]
    assert (proc.state["ended_by"], proc.state["ended_at"]) == ("final", proc.now_ms)
    assert Process(library()).run(("EXIT",)).state["ended_by"] == "exit"


def test_rollback_marks_later_steps_and_restores_the_input_of_the_kept_steps() -> None:
    proc = Process(library(), input={"s": 0})
    proc.run(("EVENT", "next", {"a": 1}), ("EVENT", "back", {"b": 2}), ("EVENT", "next", {"c": 3}))
    step = proc.send("ROLLBACK", "h2")
    assert (step.body["state"], step.body["output"], step.actions) == ("docs", {"s": 0, "a": 1}, [])
    assert proc.statuses() == ["done", "active", "rolled_back", "rolled_back"]
    for step_id in ("h3", "h9"):
        with pytest.raises(NotFound):
            proc.send("ROLLBACK", step_id)
    proc.run(("EVENT", "back", {"d": 4}))
    assert proc.statuses() == ["done", "done", "rolled_back", "rolled_back", "active"]
    assert proc.step.body["output"] == {"s": 0, "a": 1, "d": 4}
    assert proc.send("ROLLBACK", "h5").body["state"] == "personal"


def test_rollback_from_inside_a_child_to_a_parent_step_pops_the_child() -> None:
    proc = Process(library())
    proc.run("next", "submit", "send")
    step = proc.send("ROLLBACK", "h2")
    assert (step.body["flow"], step.body["state"]) == ("onboarding", "docs")
    assert proc.where() == [("onboarding", 1, "docs")]
    assert proc.send("AVAILABLE_EVENTS").body["events"] == ["back", "bank", "skip", "submit"]


def test_rollback_into_a_completed_child_restores_its_stack() -> None:
    proc = Process(library())
    proc.run("next", "submit", "send", "fail")
    assert proc.send("ROLLBACK", "h4").body["flow"] == "manual_review"
    assert proc.where() == [("onboarding", 1, "check"), ("kyc_check", 2, "review"),
                            ("manual_review", 3, "inspect")]
    assert proc.send("EVENT", "pass").body["result"] == "END"
    proc = Process(library())
    proc.run("next", "submit", "send", "fail", ("ROLLBACK", "h3"), "send")
    assert proc.where()[1:] == [("kyc_check", 2, "review"), ("manual_review", 4, "inspect")]


def test_rollback_to_an_external_step_sends_the_caller_there_again() -> None:
    proc = Process(library())
    proc.run("next", "bank", "cancel")
    assert proc.send("ROLLBACK", "h3").body == {"result": "EXTERNAL_ENTER", "pid": "p1", "url": BANK_URL}


def test_history_returns_the_step_with_its_input() -> None:
    proc = Process(library(), input={"a": 1})
    proc.run(("EVENT", "next", {"b": 2}), ("ROLLBACK", "h1"))
    body = proc.send("HISTORY", "h2").body
    assert body["step"] == {"id": "h2", "flow": "onboarding", "flowId": 1, "state": "docs", "title": "docs",
                            "value": "next", "status": "rolled_back", "input": {"b": 2}, "event": "next",
                            "at": 1002}
    assert (body["result"], body["state"]) == ("SUCCESS", "personal")
    with pytest.raises(NotFound):
        proc.send("HISTORY", "h7")
    first = proc.send("HISTORY", "h1").body["step"]
    assert history_step(proc.state, "h1").body == {"pid": "p1", "result": "SUCCESS", "step": first}


def test_an_ended_process_still_answers_history_and_available_events() -> None:
    proc = Process(library())
    proc.run("next", "skip")
    assert proc.send("AVAILABLE_EVENTS").body == {"pid": "p1", "result": "END", "events": []}
    body = proc.send("HISTORY", "h3").body
    assert (body["result"], body["step"]["state"], body["step"]["status"]) == ("END", "done", "done")


def test_exit_handled_by_the_parent_and_flow_versions_pinned_at_start() -> None:
    lib = library()
    old = Process(lib)
    lib.publish(copy.deepcopy(ONBOARDING) | {"states": {**ONBOARDING["states"], "check": {
        "subflow": "kyc_check", "on": {"approved": "done", "rejected": "docs", "exit": "personal"}}}})
    lib.publish(copy.deepcopy(KYC) | {"initial": "give_up_now", "states": {
        **KYC["states"], "give_up_now": {"on": {"ok": "rejected", "back": "upload"}}}})
    new = Process(lib)
    assert new.state["flows"] == {"onboarding": 2, "kyc_check": 2, "manual_review": 1}
    assert new.run("next", "submit").body["state"] == "give_up_now"
    assert new.send("EXIT").body["state"] == "personal" and entered(new.step) == ["onboarding.personal"]
    assert old.run("next", "submit").body["state"] == "upload"
    assert [f["version"] for f in old.state["stack"]] == [1, 1]
    assert old.send("EXIT").body["state"] == "check"


def test_the_persisted_state_has_the_documented_shape() -> None:
    state = Process(library(), input={"returnUrl": "https://x.example/r"}).state
    assert set(state) == {"pid", "status", "input", "returnUrl", "stack", "history", "next_history",
                          "next_flow_id", "flows", "started_at", "updated_at"}
    assert state["stack"] == [{"flow": "onboarding", "flowId": 1, "version": 1, "state": "personal"}]
    assert state["history"][0] == {
        "id": "h1", "flow": "onboarding", "flowId": 1, "state": "personal", "title": "Personal data",
        "value": None, "status": "active", "input": {"returnUrl": "https://x.example/r"}, "event": None,
        "at": 1001, "stack": state["stack"]}
    assert (state["next_history"], state["next_flow_id"], state["returnUrl"]) == (2, 2, "https://x.example/r")


def test_rollback_to_the_current_step_changes_nothing_but_the_time() -> None:
    proc = Process(library())
    before = proc.run("next").state
    after = proc.send("ROLLBACK", "h2").state
    assert {**after, "updated_at": 0} == {**before, "updated_at": 0}


@pytest.mark.parametrize("value", [None, 1, "x", [], {}, {"a": [1, {"b": [2.5, None]}], "c": True},
                                   [[{"d": "e"}], []]])
def test_clone_json_is_an_equal_copy_sharing_no_container(value: Any) -> None:
    clone = clone_json(value)
    assert clone == value == copy.deepcopy(value)
    containers = [id(v) for v in _containers(value)]
    assert not {id(v) for v in _containers(clone)} & set(containers)


def _containers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(c for item in value.values() for c in _containers(item))]
    if isinstance(value, list):
        return [value, *(c for item in value for c in _containers(item))]
    return []


def test_a_working_copy_shares_the_steps_and_set_status_replaces_a_step() -> None:
    state = Process(library(), input={"nested": {"k": 1}}).run("next").state
    work = working_copy(state)
    assert work == state
    assert all(a is b for a, b in zip(work["history"], state["history"], strict=True))
    for key in ("input", "stack", "history", "flows"):
        assert work[key] is not state[key]
    assert not {id(frame) for frame in work["stack"]} & {id(frame) for frame in state["stack"]}
    set_status(work, 0, "rolled_back")
    assert (work["history"][0]["status"], state["history"][0]["status"]) == ("rolled_back", "done")
    assert work["history"][1] is state["history"][1]


def test_every_earlier_state_of_a_walk_stays_as_it_was() -> None:
    """Steps are shared between successive states: no later command may change an earlier one."""
    proc, kept = Process(library(), input={"s": {"deep": [1]}}), []
    walk = [("EVENT", "next", {"a": {"b": 1}}), ("EVENT", "submit"), ("ROLLBACK", "h2"), ("EVENT", "submit"),
            ("EXIT",), ("ROLLBACK", "h4"), ("EVENT", "send"), ("ABORT",)]
    for command in walk:
        kept.append((proc.state, copy.deepcopy(proc.state)))
        proc.run(command)
    assert proc.state["status"] == "ended"
    for state, snapshot in kept:
        assert state == snapshot


def test_state_json_reuses_the_texts_of_the_steps_it_has_seen_and_only_those() -> None:
    proc = Process(library(), input={"name": "Zoë"})
    _, known = state_json(proc.state)
    walk = [("EVENT", "next", {"value": 1.5}), ("EVENT", "back"), ("ROLLBACK", "h2"), ("EVENT", "submit"),
            ("EXIT",), ("ABORT",)]
    for command in walk:
        proc.run(command)
        text, texts = state_json(proc.state, known)
        assert text == state_json(proc.state)[0]
        assert json.loads(text) == proc.state
        assert texts.steps == proc.state["history"] and texts.steps is not proc.state["history"]
        for index, step in enumerate(texts.steps):
            same = index < len(known.steps) and known.steps[index] is step
            assert (texts.texts[index] is known.texts[index]) if same else json.loads(texts.texts[index]) == step
        known = texts
    assert state_json({"pid": 1}) == ('{"pid":1}', ((), ()))
    assert state_json({"history": []}) == ('{"history":[]}', ([], []))
