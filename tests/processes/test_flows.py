"""Flow definitions on the real engine: admins change them, every token reads them, every
problem comes back with its path, and a running process keeps the version it started with."""

from __future__ import annotations

import pytest

from brokerflow import errors
from brokerflow.api.client import ApiClient
from tests.processes.flows import COUNTER, DOC_REVIEW, KYC_CHECK, ONBOARDING, flow


def details(client: ApiClient, cmd: str, params: dict) -> list[dict]:
    reply = client.request(cmd, params)
    assert reply["success"] is False and reply["error"]["code"] == "VALIDATION_FAILED", reply
    return reply["error"]["details"]


def test_admins_add_update_list_and_delete_flows(start_engine):
    running = start_engine()
    api = running.api
    added = api.call("MngAddFlow", {"flow": COUNTER})["flow"]
    assert (added["name"], added["version"], added["title"]) == ("counter", 1, "counter")
    changed = flow(COUNTER, title="Counting")
    updated = api.call("MngUpdateFlow", {"flow": changed, "version": 1})["flow"]
    assert (updated["version"], updated["title"]) == (2, "Counting")
    assert [(f["name"], f["version"]) for f in api.call("MngGetFlows")["flows"]] == [("counter", 2)]
    assert api.call("MngDeleteFlow", {"name": "counter"}) == {}
    assert api.call("MngGetFlows")["flows"] == []


def test_every_token_reads_flows_but_only_admins_change_them(start_engine):
    running = start_engine()
    running.add_flows(COUNTER)
    reader = ApiClient(running.engine.api_endpoint, running.reader)
    try:
        assert [f["name"] for f in reader.call("MngGetFlows")["flows"]] == ["counter"]
        for cmd, params in (("MngAddFlow", {"flow": flow(COUNTER, name="other")}),
                            ("MngUpdateFlow", {"flow": COUNTER}), ("MngDeleteFlow", {"name": "counter"})):
            with pytest.raises(errors.AccessDenied):
                reader.call(cmd, params)
        with pytest.raises(errors.Unauthenticated):
            ApiClient(running.engine.api_endpoint).call("MngGetFlows")
    finally:
        reader.close()


def test_adding_an_existing_name_conflicts_and_updating_an_unknown_one_is_not_found(start_engine):
    api = start_engine().api
    api.call("MngAddFlow", {"flow": COUNTER})
    assert api.request("MngAddFlow", {"flow": COUNTER})["error"]["code"] == "CONFLICT"
    assert api.request("MngUpdateFlow", {"flow": COUNTER, "version": 7})["error"]["code"] == "CONFLICT"
    assert api.request("MngUpdateFlow", {"flow": flow(COUNTER, name="x")})["error"]["code"] == "NOT_FOUND"
    assert api.request("MngDeleteFlow", {"name": "x"})["error"]["code"] == "NOT_FOUND"


BROKEN = {
    "name": "broken", "initial": "a",
    "states": {
        "a": {"on": {"go": "nowhere", "next": "sub", "spin": "loop"}},
        "island": {"on": {"x": "done"}},
        "loop": {"on": {"again": "loop"}},
        "sub": {"subflow": "ghost", "on": {"done": "done"}},
        "done": {"final": True, "fianl": True},
    },
}


def test_a_flow_is_validated_on_save_with_the_path_of_every_problem(start_engine):
    api = start_engine().api
    problems = details(api, "MngAddFlow", {"flow": BROKEN})
    assert problems == [
        {"path": "states.a.on.go", "message": "unknown target state 'nowhere'"},
        {"path": "states.done.fianl", "message": "unknown key"},
        {"path": "states.island", "message": "unreachable from the initial state"},
        {"path": "states.loop", "message": "no path to a final state"},
        {"path": "states.sub.subflow", "message": "unknown flow 'ghost'"},
    ]
    reply = api.request("MngAddFlow", {"flow": BROKEN})
    assert all(p["path"] in reply["error"]["text"] for p in problems)
    assert api.call("MngGetFlows")["flows"] == []


@pytest.mark.parametrize(("broken", "path", "message"), [
    ({"states": {"a": {"on": {"go": "b"}}, "b": {"final": True}}}, "initial", "is required"),
    ({"states": {"a": {"on": {"go": "zz"}}, "b": {"final": True}}}, "states.a.on.go", "unknown target state 'zz'"),
    ({"states": {"a": {"on": {"go": "c"}}, "b": {"final": True}, "c": {"final": True}}}, "states.b",
     "unreachable from the initial state"),
    ({"states": {"a": {"on": {"go": "b", "stay": "c"}}, "b": {"final": True}, "c": {"on": {"x": "c"}}}},
     "states.c", "no path to a final state"),
    ({"states": {"a": {"on": {"go": "a"}}}}, "states", "no final state: the flow could never end"),
    ({"states": {"a": {"subflow": "ghost", "on": {"done": "b"}}, "b": {"final": True}}}, "states.a.subflow",
     "unknown flow 'ghost'"),
])
def test_each_kind_of_problem_names_its_path(start_engine, broken, path, message):
    api = start_engine().api
    definition = {"name": "f", "initial": "a", **broken}
    if "initial" in broken.get("states", {}) or path == "initial":
        definition.pop("initial")
    assert {"path": path, "message": message} in details(api, "MngAddFlow", {"flow": definition})


def test_recursive_subflows_are_refused_on_update(start_engine):
    running = start_engine()
    running.add_flows(DOC_REVIEW, KYC_CHECK)
    looped = flow(DOC_REVIEW, states={**DOC_REVIEW["states"],
                                      "look": {"on": {"accept": "ok", "refuse": "bad", "again": "deeper"}},
                                      "deeper": {"subflow": "kyc_check", "on": {"approved": "ok", "rejected": "bad"}}})
    problems = details(running.api, "MngUpdateFlow", {"flow": looped})
    assert problems[0]["path"] == "states.deeper.subflow"
    assert problems[0]["message"].startswith("recursive subflows: ")
    assert {"kyc_check", "doc_review"} <= set(problems[0]["message"].split(": ")[1].split(" -> "))


def test_a_flow_updated_while_a_process_runs_keeps_the_process_on_its_version(running):
    door = running.door("rep")
    old = door.ok("START", name="onboarding")["pid"]
    door.ok("EVENT", pid=old, name="next")
    # v2: docs' submit now skips the KYC check; kyc_check v2 starts in a new state
    docs = {**ONBOARDING["states"]["docs"], "on": {"submit": "done", "check": "check", "back": "personal"}}
    running.api.call("MngUpdateFlow", {"flow": flow(ONBOARDING, states={**ONBOARDING["states"], "docs": docs})})
    kyc = flow(KYC_CHECK, initial="intro", states={**KYC_CHECK["states"], "intro": {"on": {"go": "upload"}}})
    running.api.call("MngUpdateFlow", {"flow": kyc})
    body = door.ok("EVENT", pid=old, name="submit")  # v1 of onboarding and of its subflow
    assert (body["flow"], body["state"]) == ("kyc_check", "upload")
    new = door.ok("START", name="onboarding")["pid"]
    door.ok("EVENT", pid=new, name="next")
    assert door.ok("EVENT", pid=new, name="submit") == {"pid": new, "result": "END"}


def test_a_deleted_flow_starts_nothing_but_its_processes_go_on(running):
    door = running.door("rep")
    pid = door.ok("START", name="counter")["pid"]
    running.api.call("MngDeleteFlow", {"name": "counter"})
    door.fail("START", "NOT_FOUND", 404, name="counter")
    assert door.ok("EVENT", pid=pid, name="step")["state"] == "counting"
    assert door.ok("EVENT", pid=pid, name="stop") == {"pid": pid, "result": "END"}


def test_unhandled_child_outcomes_come_back_as_warnings(start_engine):
    running = start_engine()
    running.add_flows(DOC_REVIEW)
    partial = {"name": "p", "initial": "r", "states": {"r": {"subflow": "doc_review", "on": {"ok": "end"}},
                                                     "end": {"final": True}}}
    reply = running.api.request("MngAddFlow", {"flow": partial})
    assert reply["success"] is True
    texts = [m["text"] for m in reply["messages"]]
    assert any("'bad'" in t for t in texts) and any("'exit'" in t for t in texts)
