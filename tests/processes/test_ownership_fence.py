"""A command that waited while its pid's partition changed hands is refused where it is applied.

``serve --cluster``: ``Partitioning.lose`` swaps the owned set, then ``forget_where`` drops the
live states. A command the pool let in before (it sat in a worker's mailbox behind a slow save,
or its burst waited for the shard) must not load the state and save over what the new owner
saved since: the shard asks ``owns_pid`` again under its lock and answers the pool's CONFLICT.

Two pools on one real SQLite store stand for the old and the new owner; ``Ownership`` and the
pid's partition are the engine's own (``Engine._owns_pid``). The test holds a shard's lock the
way a worker does while it saves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import pytest

from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.processes import BurstBatch, FlowCache, ProcessCommand, ProcessManager, start_process_pool
from brokerflow.actors.router import Ownership
from brokerflow.actors.rules import RunIds
from brokerflow.errors import Conflict
from brokerflow.workflow.partitions import partition_of, pid_key
from tests.conftest import wait_until

NOW_MS = 1_795_435_200_000
PARTITIONS = 8


def partition(pid: str) -> int:
    return partition_of(pid_key(pid), PARTITIONS)


def owns(ownership: Ownership) -> Callable[[str], bool]:
    """What the engine sets as ``ProcessManager.owns_pid`` under ``serve --cluster``."""
    return lambda pid: partition(pid) in ownership.owned


@pytest.fixture
def pools(store) -> Iterator[Callable[[Ownership], tuple[ProcessManager, StatsRegistry]]]:
    started: list[ProcessManager] = []

    def start(ownership: Ownership) -> tuple[ProcessManager, StatsRegistry]:
        stats = StatsRegistry()
        manager = start_process_pool(2, stats, FlowCache(store.flows), store.processes, Pipeline(),
                                     RunIds(store.runs), lambda: NOW_MS, 100, 60.0)
        manager.owns_pid = owns(ownership)
        started.append(manager)
        return manager, stats

    yield start
    for manager in started:
        for worker in manager.workers:
            worker.stop()


def step(manager: ProcessManager, pid: str, value: str, **kwargs) -> object:
    return manager.handle("EVENT", {"pid": pid, "name": "step", "input": {"value": value}}, None, **kwargs)


def values(state: dict | None) -> list:
    assert state is not None
    return [entry["value"] for entry in state["history"]]


def test_a_queued_command_of_a_lost_partition_is_refused_and_the_new_owners_save_stays(pools, store):
    old_owner, new_owner = Ownership.all(PARTITIONS), Ownership(PARTITIONS, ())
    (old, stats), (new, _) = pools(old_owner), pools(new_owner)
    pid = old.handle("START", {"name": "counter"}, None).result(timeout=10)["pid"]
    assert values(step(old, pid, "a").result(timeout=10)) == [None, "a"]  # live in the old owner's shard
    index = old.workers.index(old.worker_for(pid))
    shard, cell = old.shards[index], stats.cell(f"process-worker:{index}", "process")
    lost = partition(pid)
    forgotten: list[int] = []

    with shard.lock:  # the worker is busy (a slow save): the next command waits in its mailbox
        late = step(old, pid, "late")  # the pool still owns the pid: let in
        wait_until(lambda: cell.active)  # the worker has taken it and waits for the shard
        # What Partitioning.lose does: the owned set first, then forget_where (which waits for the shard).
        old_owner.set(old_owner.owned - {lost})
        forget = threading.Thread(target=lambda: forgotten.append(
            old.forget_where(lambda other: partition(other) == lost)))
        forget.start()
        new_owner.set({lost})  # the next owner takes the partition and serves the pid from storage
        assert values(step(new, pid, "new").result(timeout=10)) == [None, "a", "new"]
        assert not late.done()

    with pytest.raises(Conflict, match="another shard .* or cluster member"):
        late.result(timeout=10)
    forget.join(timeout=10)
    assert forgotten == [1]  # the old owner's live state is gone
    assert values(store.processes.load(pid)) == [None, "a", "new"]  # not overwritten by "late"
    assert cell.failed == 0  # a refusal is an answer, not a failure of the worker
    # The pool refuses the pid from now on, and the new owner goes on from what it stored.
    with pytest.raises(Conflict):
        step(old, pid, "again").result(timeout=10)
    assert values(step(new, pid, "next").result(timeout=10)) == [None, "a", "new", "next"]


def test_a_burst_command_applied_after_its_partition_was_lost_is_refused_and_saves_nothing(pools, store):
    owner = Ownership.all(PARTITIONS)
    old, _ = pools(owner)
    pid = old.handle("START", {"name": "counter"}, None).result(timeout=10)["pid"]
    shard = old.shards[old.workers.index(old.worker_for(pid))]
    # The management API's loop passed the pool's check while the partition was owned and then
    # waited for the shard; meanwhile the partition went away. Then it applies the command here.
    owner.set(owner.owned - {partition(pid)})
    batch = BurstBatch()
    late = ProcessCommand("EVENT", pid, "step", {"value": "late"}, Future())
    shard.apply_in_burst(late, batch)
    other = next(p for p in (f"{n:032x}" for n in range(1000)) if partition(p) == partition(pid))
    created = ProcessCommand("START", other, "counter", None, Future())  # a START whose fresh pid was lost too
    shard.apply_in_burst(created, batch)
    assert [item.save for item in batch.items] == [None, None]
    old.finish_burst(batch)
    for command in (late, created):
        with pytest.raises(Conflict, match="another shard"):
            command.reply.result(timeout=0)
    assert values(store.processes.load(pid)) == [None]
    assert store.processes.load(other) is None
    assert shard.lock.acquire(blocking=False)  # the burst gave the shard back
    shard.lock.release()
