"""The Workflow Machine over plain data: every command, reply kind and error, subflows, rollback."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from brokerflow.errors import (
    BadRequest,
    EventNotAvailable,
    NotFound,
    ProcessEnded,
    UnknownCommand,
    ValidationFailed,
)
from brokerflow.workflow.machine.commands import COMMANDS, Step, abort, apply_command, start
from brokerflow.workflow.machine.flows import check_flow

BANK_URL, RETURN_URL = "https://bank.example/pay", "https://crm.example/back"
HINTS = [{"elementCode": "email", "hintTexts": [{"text": "Your e-mail", "hintTextType": "FIELD"}]}]


def act(message: str) -> dict:
    return {"type": "notify.manager", "params": {"message": message}}


ONBOARDING = {"name": "onboarding", "initial": "personal", "states": {
    "personal": {"title": "Personal data", "on": {"next": "docs"}, "boStepCode": "PD", "hints": HINTS,
                 "actions": [act("personal")]},
    "docs": {"on": {"submit": "check", "back": "personal", "bank": "bank", "skip": "done"},
             "actions": [act("docs")]},
    "check": {"subflow": "kyc_check", "on": {"approved": "done", "rejected": "docs"},
              "actions": [act("check")]},
    "bank": {"external": {"url": BANK_URL}, "on": {"return": "done", "cancel": "docs"}},
    "done": {"final": True, "actions": [act("done")]}}}
KYC = {"name": "kyc_check", "initial": "upload", "states": {
    "upload": {"title": "Upload", "on": {"send": "review", "give_up": "rejected"},
               "actions": [act("upload")]},
    "review": {"subflow": "manual_review", "on": {"ok": "approved", "bad": "rejected"}},
    "approved": {"final": True, "actions": [act("approved")]},
    "rejected": {"final": True}}}
REVIEW = {"name": "manual_review", "initial": "inspect", "states": {
    "inspect": {"on": {"pass": "ok", "fail": "bad", "odd": "strange"}},
    "ok": {"final": True}, "bad": {"final": True}, "strange": {"final": True}}}


class Library:
    """A FlowLookup over published versions, numbered from 1 like the flow store does."""

    def __init__(self, *flows: dict) -> None:
        self.versions: dict[str, list[dict]] = {}
        for flow in flows:
            self.publish(flow)

    def publish(self, flow: dict) -> None:
        known = {name: versions[-1] for name, versions in self.versions.items()}
        versions = self.versions.setdefault(flow["name"], [])
        versions.append({**check_flow(flow, known), "version": len(versions) + 1})

    def __call__(self, name: str, version: Any) -> dict:
        versions = self.versions.get(name, [])
        if not versions or version is not None and not 1 <= version <= len(versions):
            raise NotFound(f"flow {name!r} version {version!r}")
        return copy.deepcopy(versions[-1 if version is None else version - 1])


def library() -> Library:
    return Library(REVIEW, KYC, ONBOARDING)


class Process:
    """Drives one process through ``apply_command``, checking purity and JSON after every step."""

    def __init__(self, lib: Library, cmd: str = "START", name: str = "onboarding", input: Any = None) -> None:
        self.lib, self.now_ms, self.step = lib, 1000, Step({}, {}, [])
        self.step = self.send(cmd, name, input, state=None)

    def send(self, cmd: str, name: Any = None, input: Any = None, state: Any = ...) -> Step:
        state = self.step.state if state is ... else state
        before = copy.deepcopy(state)
        self.now_ms += 1
        step = apply_command(self.lib, state, cmd, name, input, "p1", self.now_ms)
        assert state == before, "a command mutated the state it was given"
        assert json.loads(json.dumps(step.state)) == step.state
        assert json.loads(json.dumps([step.body, step.actions])) == [step.body, step.actions]
        self.step = step
        return step

    def run(self, *commands: str | tuple) -> Step:
        for command in commands:
            cmd, *args = command if isinstance(command, tuple) else ("EVENT", command)
            self.send(cmd, *args)
        return self.step

    @property
    def state(self) -> dict:
        return self.step.state

    def where(self) -> list[tuple[str, int, str]]:
        return [(f["flow"], f["flowId"], f["state"]) for f in self.state["stack"]]

    def statuses(self) -> list[str]:
        return [h["status"] for h in self.state["history"]]


def entered(step: Step) -> list[str]:
    return [f"{a['flow']}.{a['state']}" for a in step.actions]


def test_start_answers_success_field_for_field() -> None:
    step = Process(library(), input={"email": "a@b.c"}).step
    assert step.body == {
        "result": "SUCCESS", "pid": "p1", "flow": "onboarding", "state": "personal",
        "output": {"email": "a@b.c"}, "hints": {"boStepCode": "PD", "hints": HINTS},
        "history": [{"id": "h1", "flow": "onboarding", "flowId": 1, "state": "personal",
                     "title": "Personal data", "value": None, "status": "active"}],
    }
    assert step.actions == [{"flow": "onboarding", "state": "personal", "actions": [act("personal")]}]
    assert step.state["flows"] == {"onboarding": 1, "kyc_check": 1, "manual_review": 1}
    assert step.state["status"] == "active" and step.state["started_at"] == 1001


def test_event_moves_on_accumulating_input_and_closing_the_previous_step() -> None:
    proc = Process(library(), input={"a": 1, "b": 1})
    body = proc.send("EVENT", "next", {"b": 2, "value": "Ann"}).body
    assert (body["state"], body["output"]) == ("docs", {"a": 1, "b": 2, "value": "Ann"})
    assert body["hints"] == {"boStepCode": None, "hints": []}
    assert body["history"][1] == {"id": "h2", "flow": "onboarding", "flowId": 1, "state": "docs",
                                  "title": "docs", "value": "Ann", "status": "active"}
    assert proc.statuses() == ["done", "active"] and entered(proc.step) == ["onboarding.docs"]


REPLIES = [
    ("external enter", {}, ["next", "bank"], {"result": "EXTERNAL_ENTER", "pid": "p1", "url": BANK_URL}),
    ("external then return", {}, ["next", "bank", "return"], {"pid": "p1", "result": "END"}),
    ("final state", {}, ["next", "skip"], {"pid": "p1", "result": "END"}),
    ("final with returnUrl", {"returnUrl": RETURN_URL}, ["next", "skip"],
     {"result": "EXTERNAL_RETURN", "pid": "p1", "url": RETURN_URL}),
    ("exit top flow", {}, [("EXIT",)], {"pid": "p1", "result": "END"}),
    ("exit top with returnUrl", {"returnUrl": RETURN_URL}, [("EXIT",)],
     {"result": "EXTERNAL_RETURN", "pid": "p1", "url": RETURN_URL}),
    ("abort", {}, ["next", ("ABORT",)], {"pid": "p1", "result": "END"}),
    ("abort with returnUrl", {"returnUrl": RETURN_URL}, [("ABORT",)], {"pid": "p1", "result": "END"}),
]


@pytest.mark.parametrize(("case", "start_input", "script", "body"), REPLIES, ids=[r[0] for r in REPLIES])
def test_each_reply_kind_field_for_field(case: str, start_input: dict, script: list, body: dict) -> None:
    proc = Process(library(), input=start_input)
    assert proc.run(*script).body == body
    assert proc.state["status"] == ("active" if body["result"] == "EXTERNAL_ENTER" else "ended")
    assert proc.statuses().count("active") == (body["result"] == "EXTERNAL_ENTER")


def test_entering_a_subflow_starts_the_child_and_reports_both_entries() -> None:
    proc = Process(library())
    step = proc.run("next", "submit")
    assert (step.body["flow"], step.body["state"]) == ("kyc_check", "upload")
    assert entered(step) == ["onboarding.check", "kyc_check.upload"]
    assert step.body["history"][-1] == {"id": "h3", "flow": "kyc_check", "flowId": 2, "state": "upload",
                                        "title": "Upload", "value": "submit", "status": "active"}
    assert proc.where() == [("onboarding", 1, "check"), ("kyc_check", 2, "upload")]


def test_a_subflow_inside_a_subflow_returns_through_both_parents() -> None:
    proc = Process(library())
    proc.run("next", "submit", "send")
    assert proc.where() == [("onboarding", 1, "check"), ("kyc_check", 2, "review"),
                            ("manual_review", 3, "inspect")]
    step = proc.send("EVENT", "pass")
    assert step.body == {"pid": "p1", "result": "END"}
    assert entered(step) == ["kyc_check.approved", "onboarding.done"]
    assert [(h["flow"], h["state"], h["value"]) for h in proc.state["history"][-2:]] == [
        ("manual_review", "inspect", "send"), ("onboarding", "done", "approved")]


def test_a_child_outcome_leads_the_parent_on() -> None:
    proc = Process(library())
    step = proc.run("next", "submit", "send", "fail")
    assert (step.body["flow"], step.body["state"], step.body["history"][-1]["value"]) == (
        "onboarding", "docs", "rejected")
    assert entered(step) == ["onboarding.docs"] and proc.where() == [("onboarding", 1, "docs")]


def test_an_unhandled_child_outcome_leaves_the_process_in_the_parent_subflow_state() -> None:
    proc = Process(library())
    step = proc.run("next", "submit", "send", "odd")
    assert (step.body["result"], step.body["flow"], step.body["state"]) == ("SUCCESS", "kyc_check", "review")
    assert step.body["history"][-1]["value"] == "strange"
    assert proc.send("AVAILABLE_EVENTS").body["events"] == ["bad", "ok"]
    assert proc.send("EVENT", "ok").body["result"] == "END"


@pytest.mark.parametrize(("script", "where"), [
    (["next", "submit"], [("onboarding", 1, "check")]),
    (["next", "submit", "send"], [("onboarding", 1, "check"), ("kyc_check", 2, "review")]),
])
def test_exit_in_a_child_returns_exit_to_its_parent(script: list, where: list) -> None:
    proc = Process(library())
    proc.run(*script)
    step = proc.send("EXIT")
    assert step.body["result"] == "SUCCESS" and proc.where() == where
    assert step.body["history"][-1]["value"] == "exit" and step.actions == []


@pytest.mark.parametrize(("target", "flow", "state", "actions"), [
    ("docs", "onboarding", "docs", ["onboarding.docs"]),
    ("check", "kyc_check", "upload", ["onboarding.check", "kyc_check.upload"]),
])
def test_restore_enters_the_given_state(target: str, flow: str, state: str, actions: list) -> None:
    step = Process(library(), "RESTORE", input={"state": target, "x": 1}).step
    assert (step.body["flow"], step.body["state"], step.body["output"]) == (flow, state, {"x": 1})
    assert entered(step) == actions and step.body["history"][0]["id"] == "h1"


def test_restore_into_a_final_state_ends_at_once() -> None:
    assert Process(library(), "RESTORE", input={"state": "done"}).step.body == {"pid": "p1", "result": "END"}


@pytest.mark.parametrize(("cmd", "name"), [("EVENT", "next"), ("ROLLBACK", "h1"), ("EXIT", None),
                                           ("ABORT", None)])
def test_commands_that_change_an_ended_process_are_refused(cmd: str, name: str | None) -> None:
    proc = Process(library())
    proc.run(("ABORT",))
    with pytest.raises(ProcessEnded):
        proc.send(cmd, name)


def test_an_event_the_state_does_not_have_is_not_available() -> None:
    proc = Process(library())
    with pytest.raises(EventNotAvailable, match="'submit' is not available in state 'personal'"):
        proc.send("EVENT", "submit")
    with pytest.raises(EventNotAvailable):
        proc.send("EVENT", "exit")


BAD = [
    ("unknown command", "JUMP", "x", None, "p1", UnknownCommand),
    ("start without name", "START", None, None, "p1", BadRequest),
    ("restore without name", "RESTORE", "", None, "p1", BadRequest),
    ("start without pid", "START", "onboarding", None, None, BadRequest),
    ("pid of a wrong type", "START", "onboarding", None, ["p"], BadRequest),
    ("input a list", "START", "onboarding", ["x"], "p1", BadRequest),
    ("input a string", "EVENT", "next", "x", "p1", BadRequest),
    ("input not JSON", "START", "onboarding", {"b": b"\x00"}, "p1", BadRequest),
    ("input with int keys", "START", "onboarding", {1: 2}, "p1", BadRequest),
    ("event without name", "EVENT", None, None, "p1", BadRequest),
    ("event name not a string", "EVENT", 5, None, "p1", BadRequest),
    ("rollback without name", "ROLLBACK", None, None, "p1", BadRequest),
    ("history without name", "HISTORY", "", None, "p1", BadRequest),
    ("unknown flow", "START", "nope", None, "p1", NotFound),
    ("returnUrl not a string", "START", "onboarding", {"returnUrl": 5}, "p1", ValidationFailed),
    ("restore without state", "RESTORE", "onboarding", {}, "p1", ValidationFailed),
    ("restore to an unknown state", "RESTORE", "onboarding", {"state": "nowhere"}, "p1", NotFound),
]


@pytest.mark.parametrize(("case", "cmd", "name", "input", "pid", "error"), BAD, ids=[b[0] for b in BAD])
def test_bad_commands_raise_the_right_error(case: str, cmd: str, name: Any, input: Any, pid: Any,
                                             error: type) -> None:
    state = Process(library()).state
    with pytest.raises(error):
        apply_command(library(), state, cmd, name, input, pid, 5)


def test_validation_errors_name_the_input_path() -> None:
    with pytest.raises(ValidationFailed) as caught:
        apply_command(library(), None, "RESTORE", "onboarding", {}, "p1", 5)
    assert caught.value.details == [
        {"path": "input.state", "message": "is required: the state to restore to"}]


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c not in ("START", "RESTORE")])
def test_commands_on_a_process_that_does_not_exist_are_not_found(cmd: str) -> None:
    with pytest.raises(NotFound, match="process 'p9' not found"):
        apply_command(library(), None, cmd, "h1", None, "p9", 5)


def test_a_flow_that_loops_without_resting_fails_the_command() -> None:
    instant = {"name": "instant", "initial": "fin", "states": {"fin": {"final": True}}}
    loop = {"name": "loop", "initial": "a", "states": {
        "a": {"on": {"go": "b"}}, "b": {"subflow": "instant", "on": {"fin": "b", "out": "end"}},
        "end": {"final": True}}}
    proc = Process(Library(instant, loop), name="loop")
    with pytest.raises(ValidationFailed, match="loops without resting"):
        proc.send("EVENT", "go")


def test_the_functions_work_without_the_dispatcher() -> None:
    step = start(library(), "onboarding", None, 42, 7)
    assert step.body["pid"] == 42 and step.body["output"] == {}
    ended = abort(step.state, 8)
    assert ended.body == {"pid": 42, "result": "END"} and ended.state["ended_by"] == "abort"
    assert step.state["status"] == "active"
