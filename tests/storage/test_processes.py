"""Process states: created with a pid, saved at each step, loaded after a restart."""

from __future__ import annotations

import pytest

from brokerflow.errors import Conflict, ValidationFailed
from storage import open_store


def test_create_assigns_a_pid_when_the_state_has_none(store):
    pid = store.processes.create({"status": "active", "stack": [{"flow": "onboarding"}]})
    assert isinstance(pid, str) and len(pid) == 32
    assert store.processes.load(pid) == {"pid": pid, "status": "active", "stack": [{"flow": "onboarding"}]}


def test_create_keeps_a_given_pid_and_refuses_a_taken_one(store):
    assert store.processes.create({"pid": "p-1", "status": "active"}) == "p-1"
    with pytest.raises(Conflict):
        store.processes.create({"pid": "p-1", "status": "active"})


def test_save_replaces_the_state(store):
    pid = store.processes.create({"status": "active", "history": []})
    store.processes.save({"pid": pid, "status": "ended", "history": [{"state": "done"}]})
    assert store.processes.load(pid)["history"] == [{"state": "done"}]
    model = store.processes._m.Process
    assert model.get(model.pid == pid).ended is True


def test_save_of_an_unknown_pid_inserts_it(store):
    store.processes.save({"pid": "new", "status": "active"})
    assert store.processes.load("new") == {"pid": "new", "status": "active"}


def test_integer_pids_work_too(store):
    assert store.processes.create({"pid": 42, "status": "active"}) == 42
    assert store.processes.load(42) == {"pid": 42, "status": "active"}


def test_unknown_pids_load_as_none(store):
    assert store.processes.load("nope") is None
    assert store.processes.load(None) is None


@pytest.mark.parametrize("state", [{"status": "active"}, {"pid": ""}, {"pid": 1.5}, "pid"])
def test_save_needs_a_pid(store, state):
    with pytest.raises(ValidationFailed):
        store.processes.save(state)


def test_processes_survive_a_restart(db_url):
    with open_store(db_url) as first:
        pid = first.processes.create({"status": "active", "stack": [{"flow": "f", "state": "docs"}]})
    with open_store(db_url) as second:
        assert second.processes.load(pid)["stack"] == [{"flow": "f", "state": "docs"}]


def test_save_stores_the_text_a_caller_already_encoded(store):
    store.processes.save({"pid": "p", "status": "active"}, '{"pid":"p","status":"active","history":[{"id":"h1"}]}')
    assert store.processes.load("p") == {"pid": "p", "status": "active", "history": [{"id": "h1"}]}
    store.processes.save({"pid": "p", "status": "ended"}, '{"pid":"p","status":"ended"}')
    model = store.processes._m.Process
    row = model.get(model.pid == "p")
    assert (row.state, row.ended) == ({"pid": "p", "status": "ended"}, True)
    assert model.select().where(model.ended == False).count() == 0  # noqa: E712
