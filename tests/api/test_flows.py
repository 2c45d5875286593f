"""Flow definitions: add, update, delete, list, validated with paths."""

from __future__ import annotations

ONBOARDING = {
    "name": "onboarding", "title": "Onboarding", "initial": "personal",
    "states": {
        "personal": {"title": "Personal data", "on": {"next": "docs"}},
        "docs": {"on": {"submit": "done", "back": "personal"}},
        "done": {"final": True},
    },
}


def test_add_then_list_and_listeners_hear_of_it(api):
    names = []
    api.services.flow_listeners.append(names.append)
    flow = api.body("MngAddFlow", {"flow": ONBOARDING})["flow"]
    assert flow["name"] == "onboarding"
    assert flow["version"] == 1
    assert [f["name"] for f in api.body("MngGetFlows")["flows"]] == ["onboarding"]
    assert names == ["onboarding"]


def test_adding_an_existing_flow_is_conflict_and_update_makes_a_new_version(api):
    api.body("MngAddFlow", {"flow": ONBOARDING})
    assert api.error("MngAddFlow", {"flow": ONBOARDING})["code"] == "CONFLICT"
    updated = api.body("MngUpdateFlow", {"flow": {**ONBOARDING, "title": "New"}})["flow"]
    assert updated["version"] == 2
    assert updated["title"] == "New"
    assert api.error("MngUpdateFlow", {"flow": ONBOARDING, "version": 1})["code"] == "CONFLICT"


def test_updating_an_unknown_flow_is_not_found(api):
    assert api.error("MngUpdateFlow", {"flow": ONBOARDING})["code"] == "NOT_FOUND"


def test_invalid_flows_are_validation_failed_with_paths(api):
    broken = {
        "name": "broken", "initial": "a",
        "states": {"a": {"on": {"go": "nowhere"}}, "b": {"subflow": "missing", "on": {"done": "a"}}},
    }
    error = api.error("MngAddFlow", {"flow": broken})
    assert error["code"] == "VALIDATION_FAILED"
    paths = {d["path"] for d in error["details"]}
    assert "states.a.on.go" in paths
    assert any("subflow" in p or p.startswith("states.b") for p in paths)
    assert api.body("MngGetFlows")["flows"] == []


def test_a_subflow_must_exist_and_unhandled_child_outcomes_are_warnings(api):
    parent = {"name": "parent", "initial": "check",
              "states": {"check": {"subflow": "onboarding", "on": {"done": "end"}}, "end": {"final": True}}}
    assert api.error("MngAddFlow", {"flow": parent})["code"] == "VALIDATION_FAILED"
    api.body("MngAddFlow", {"flow": ONBOARDING})
    reply = api.call("MngAddFlow", {"flow": parent})
    assert reply["success"] is True
    assert any("exit" in m["text"] for m in reply["messages"])


def test_delete_hides_the_flow(api):
    api.body("MngAddFlow", {"flow": ONBOARDING})
    assert api.body("MngDeleteFlow", {"name": "onboarding"}) == {}
    assert api.body("MngGetFlows")["flows"] == []
    assert api.error("MngDeleteFlow", {"name": "onboarding"})["code"] == "NOT_FOUND"
    assert api.error("MngDeleteFlow", {})["code"] == "VALIDATION_FAILED"
