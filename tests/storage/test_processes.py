"""Process states: created with a pid, saved at each step, loaded after a restart."""

from __future__ import annotations

import threading

import pytest

from brokerflow.errors import Conflict, ValidationFailed
from brokerflow.storage import open_store
from brokerflow.storage.repositories.processes import GroupCommit
from tests.conftest import wait_until


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


def _savers(commits, rows):
    """One thread per row, all calling ``commits.save``; returns (threads, errors by row)."""
    errors: dict = {}

    def save(row):
        try:
            commits.save(row)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            errors[row] = exc

    threads = [threading.Thread(target=save, args=(row,)) for row in rows]
    for thread in threads:
        thread.start()
    return threads, errors


def test_saves_queued_behind_a_running_write_are_written_together():
    release, batches = threading.Event(), []

    def write(rows):
        batches.append(list(rows))
        if len(batches) == 1:
            release.wait(10)

    commits = GroupCommit(write)
    first, _ = _savers(commits, [("a",)])
    wait_until(lambda: batches)
    rest, errors = _savers(commits, [(name,) for name in "bcdefgh"])
    wait_until(lambda: len(commits._queue) == 8)
    release.set()
    for thread in first + rest:
        thread.join(10)
    assert batches[0] == [("a",)]
    assert sorted(batches[1]) == [(name,) for name in "bcdefgh"] and len(batches) == 2
    assert errors == {} and commits.batches == 2 and not commits._queue


def test_a_bad_row_in_a_batch_fails_only_its_own_saver():
    release, written = threading.Event(), []

    def write(rows):
        if rows == [("first",)]:
            release.wait(10)
        if ("bad",) in rows:
            raise ValueError("bad row")
        written.extend(rows)

    commits = GroupCommit(write)
    first, _ = _savers(commits, [("first",)])
    wait_until(lambda: len(commits._queue) == 1)
    rest, errors = _savers(commits, [("ok1",), ("bad",), ("ok2",)])
    wait_until(lambda: len(commits._queue) == 4)
    release.set()
    for thread in first + rest:
        thread.join(10)
    assert sorted(written) == [("first",), ("ok1",), ("ok2",)]
    assert list(errors) == [("bad",)] and isinstance(errors[("bad",)], ValueError)


def test_concurrent_saves_of_many_processes_all_persist_in_fewer_transactions(store):
    def work(worker: int) -> None:
        for step in range(30):
            store.processes.save({"pid": f"w{worker}", "status": "active", "step": step})

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [store.processes.load(f"w{worker}")["step"] for worker in range(8)] == [29] * 8
    assert store.processes.commits.batches <= 8 * 30


def test_a_save_inside_the_callers_transaction_is_part_of_it(store):
    with store.db.atomic() as transaction:
        store.processes.save({"pid": "in-tx", "status": "active"})
        transaction.rollback()
    assert store.processes.load("in-tx") is None
    assert store.processes.commits.batches == 0


def test_save_many_writes_every_pid_once_with_its_last_state(store):
    pids = [store.processes.create({"status": "active", "history": []}) for _ in range(3)]
    states = [({"pid": pid, "status": "active", "history": [{"n": n}]}, None) for n, pid in enumerate(pids)]
    states.append(({"pid": pids[0], "status": "ended", "history": [{"n": "last"}]}, None))
    states.append(({"pid": "fresh", "status": "active"}, '{"pid":"fresh","status":"active","text":1}'))
    assert store.processes.save_many(states) == {}
    assert [store.processes.load(pid)["history"] for pid in pids] == [[{"n": "last"}], [{"n": 1}], [{"n": 2}]]
    assert store.processes.load("fresh") == {"pid": "fresh", "status": "active", "text": 1}
    model = store.processes._m.Process
    assert model.get(model.pid == pids[0]).ended is True
    assert store.processes.save_many([]) == {}


def test_save_many_needs_a_pid_in_every_state(store):
    with pytest.raises(ValidationFailed):
        store.processes.save_many([({"status": "active"}, None)])


def test_recent_lists_the_last_saved_processes_first_and_filters_by_ended(store):
    for pid in ("a", "b", "c"):
        store.processes.create({"pid": pid, "status": "active", "stack": []})
    store.processes.save({"pid": "a", "status": "ended", "ended": True, "stack": []})
    assert [state["pid"] for state, _ in store.processes.recent(10)] == ["a", "c", "b"]
    assert [state["pid"] for state, _ in store.processes.recent(10, ended=False)] == ["c", "b"]
    assert [state["pid"] for state, _ in store.processes.recent(1)] == ["a"]
    with pytest.raises(ValidationFailed):
        store.processes.recent(0)
