"""Flow definitions: every save a version, delete hides the name but keeps its versions."""

from __future__ import annotations

import pytest

from brokerflow.errors import NotFound, ValidationFailed

ONBOARDING = {
    "name": "onboarding", "title": "Onboarding", "initial": "personal",
    "states": {"personal": {"on": {"next": "done"}}, "done": {"final": True}},
}


def test_save_assigns_increasing_versions_and_get_returns_the_latest(store):
    first = store.flows.save(ONBOARDING, by="admin")
    second = store.flows.save({**ONBOARDING, "title": "Onboarding v2", "version": 99}, by="admin")
    assert (first["version"], second["version"]) == (1, 2)
    assert store.flows.get("onboarding") == second
    assert store.flows.get("onboarding", 1) == {**ONBOARDING, "version": 1}


def test_list_shows_the_latest_version_of_each_flow_by_name(store):
    store.flows.save({**ONBOARDING, "name": "zeta"})
    store.flows.save(ONBOARDING)
    store.flows.save({**ONBOARDING, "title": "again"})
    assert [(f["name"], f["version"], f["title"]) for f in store.flows.list()] == [
        ("onboarding", 2, "again"), ("zeta", 1, "Onboarding")]


def test_delete_hides_the_flow_but_old_versions_stay_loadable(store):
    store.flows.save(ONBOARDING)
    store.flows.save(ONBOARDING)
    store.flows.delete("onboarding")
    assert store.flows.list() == []
    with pytest.raises(NotFound):
        store.flows.get("onboarding")
    assert store.flows.get("onboarding", 1)["version"] == 1  # a running process still needs it
    with pytest.raises(NotFound):
        store.flows.delete("onboarding")


def test_saving_a_deleted_name_again_continues_its_versions(store):
    store.flows.save(ONBOARDING)
    store.flows.delete("onboarding")
    again = store.flows.save(ONBOARDING)
    assert again["version"] == 2
    assert [f["version"] for f in store.flows.list()] == [2]


def test_unknown_flows_and_versions_are_not_found(store):
    store.flows.save(ONBOARDING)
    for name, version in (("nope", None), ("onboarding", 5), ("onboarding", "1")):
        with pytest.raises(NotFound):
            store.flows.get(name, version)
    with pytest.raises(NotFound):
        store.flows.delete("nope")


def test_a_flow_needs_a_name(store):
    with pytest.raises(ValidationFailed) as info:
        store.flows.save({"states": {}})
    assert info.value.details[0]["path"] == "flow.name"
