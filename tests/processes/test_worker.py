"""The process pool on its own: a real SQLite store, real worker threads, a clock the test steps."""

from __future__ import annotations

import threading

import pytest

from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.processes import (
    FlowCache,
    ProcessCommand,
    ProcessManager,
    Sweep,
    start_process_pool,
    sweep_interval_s,
)
from brokerflow.actors.rules import RunIds
from brokerflow.errors import BadRequest, EventNotAvailable, Internal, NotFound, ProcessEnded
from tests.conftest import wait_until

NOW_MS = 1_795_435_200_000


class Clock:
    def __init__(self) -> None:
        self.ms = NOW_MS

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def pool(store):
    """``pool(workers=2, live_cap=4, idle_s=60) -> (manager, stats, clock)``."""
    clock = Clock()

    def start(workers: int = 2, live_cap: int = 4, idle_s: float = 60.0):
        stats = StatsRegistry()
        manager = start_process_pool(workers, stats, FlowCache(store.flows), store.processes, Pipeline(),
                                     RunIds(store.runs), clock, live_cap, idle_s)
        return manager, stats, clock

    return start


def ask(manager: ProcessManager, cmd: str, **params) -> dict:
    return manager.handle(cmd, params, None).result(timeout=10)


def cells(stats: StatsRegistry) -> list[dict]:
    return [c for c in stats.snapshot() if c["kind"] == "process"]


def total(stats: StatsRegistry, key: str) -> int:
    return sum(c[key] for c in cells(stats))


def test_refused_commands_are_answers_not_worker_failures(pool):
    manager, stats, _ = pool()
    pid = ask(manager, "START", name="counter")["pid"]
    for cmd, params, error in (("EVENT", {"pid": pid, "name": "fly"}, EventNotAvailable),
                               ("EVENT", {"pid": "unknown", "name": "step"}, NotFound),
                               ("START", {"name": "nope"}, NotFound),
                               ("EVENT", {"pid": pid}, BadRequest),
                               ("EVENT", {"pid": pid, "name": "step", "input": "x"}, BadRequest)):
        with pytest.raises(error):
            ask(manager, cmd, **params)
    ask(manager, "ABORT", pid=pid)
    with pytest.raises(ProcessEnded):
        ask(manager, "EVENT", pid=pid, name="step")
    assert total(stats, "failed") == 0
    assert total(stats, "processed") == 8


def test_garbage_in_a_worker_mailbox_is_counted_and_the_next_command_served(pool):
    manager, stats, _ = pool(workers=1)
    manager.workers[0].tell("garbage")
    manager.workers[0].tell(ProcessCommand("EVENT", "x", "step", None, "not a future"))
    assert ask(manager, "START", name="counter")["result"] == "SUCCESS"
    assert total(stats, "failed") == 2


def test_a_missing_pid_is_a_bad_request_before_any_worker(pool):
    manager, stats, _ = pool()
    with pytest.raises(BadRequest):
        ask(manager, "EVENT", name="step")
    assert total(stats, "processed") == 0


def test_commands_after_the_pool_stopped_are_internal_errors(pool):
    manager, _, _ = pool()
    for worker in manager.workers:
        worker.stop()
    with pytest.raises(Internal):
        ask(manager, "START", name="counter")


def test_the_live_cap_passivates_the_least_recently_used(pool, store):
    manager, stats, _ = pool(workers=1, live_cap=2)
    pids = [ask(manager, "START", name="counter")["pid"] for _ in range(5)]
    assert (total(stats, "active"), total(stats, "activations"), total(stats, "passivations")) == (2, 0, 3)
    body = ask(manager, "EVENT", pid=pids[0], name="step", input={"value": "back"})  # loaded again
    assert [s["value"] for s in body["history"]] == [None, "back"]
    assert (total(stats, "active"), total(stats, "activations"), total(stats, "passivations")) == (2, 1, 4)
    assert store.processes.load(pids[0])["history"][-1]["value"] == "back"  # persisted before the reply


def test_idle_processes_are_passivated_by_a_sweep(pool):
    manager, stats, clock = pool(workers=1, live_cap=100, idle_s=1.0)
    old = [ask(manager, "START", name="counter")["pid"] for _ in range(3)]
    clock.ms += 800
    fresh = ask(manager, "START", name="counter")["pid"]
    clock.ms += 400  # the first three are idle 1.2 s, the fresh one 0.4 s
    manager.workers[0].ask(Sweep(clock()), timeout=5)
    assert (total(stats, "active"), total(stats, "passivations")) == (1, 3)
    ask(manager, "AVAILABLE_EVENTS", pid=fresh)
    assert total(stats, "activations") == 0
    for pid in old:
        ask(manager, "HISTORY", pid=pid, name="h1")
    assert total(stats, "activations") == 3
    assert total(stats, "processed") == 8  # the sweep is not counted as a processed message


def test_an_ended_process_is_not_kept_in_memory(pool):
    manager, stats, _ = pool(workers=1)
    pid = ask(manager, "START", name="counter")["pid"]
    assert total(stats, "active") == 1
    assert ask(manager, "EVENT", pid=pid, name="stop") == {"pid": pid, "result": "END"}
    assert (total(stats, "active"), total(stats, "passivations")) == (0, 1)


def test_the_sweeper_loop_sweeps_until_stopped(pool):
    manager, _, _ = pool(workers=1)
    manager.sweep_interval_s = 0.01
    seen: list[int] = []
    manager.sweep = seen.append
    stop = threading.Event()
    thread = threading.Thread(target=manager.run_sweeper, args=(stop,))
    thread.start()
    wait_until(lambda: len(seen) >= 3)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and seen[0] == NOW_MS


@pytest.mark.parametrize(("idle_s", "interval_s"), [(60.0, 5.0), (2.0, 1.0), (0.01, 0.05)])
def test_the_sweep_interval_is_half_the_idle_time_within_bounds(idle_s, interval_s):
    assert sweep_interval_s(idle_s) == interval_s


def test_sweep_messages_are_not_counted_and_harmless_when_nothing_is_active(pool):
    manager, stats, clock = pool(workers=1)
    manager.workers[0].tell(Sweep(clock()))
    assert ask(manager, "START", name="counter")["result"] == "SUCCESS"
    assert total(stats, "processed") == 1


class SlowRepo:
    """A flows repository whose read of the latest version races with an update."""

    def __init__(self) -> None:
        self.version, self.cache = 1, None

    def get(self, name: str, version=None) -> dict:
        seen = self.version
        if version is None and self.cache is not None:
            self.version += 1  # the update lands while this read is in flight
            self.cache.changed(name)
        return {"name": name, "version": version or seen}


def test_the_flow_cache_never_keeps_a_latest_version_read_before_a_change():
    repo = SlowRepo()
    cache = repo.cache = FlowCache(repo)
    assert cache("f")["version"] == 1  # stale by the time it returned: not cached
    repo.cache = None
    assert cache("f")["version"] == 2
    assert cache("f") is cache("f")
    assert cache("f", 1) == {"name": "f", "version": 1}


def test_an_unknown_flow_version_is_not_found(store):
    cache = FlowCache(store.flows)
    with pytest.raises(NotFound):
        cache("counter", 9)
    assert cache("counter")["version"] == 1



def test_the_stored_state_follows_every_command_also_when_steps_are_replaced(pool, store):
    """The worker encodes only the steps a command made: a ROLLBACK's replaced steps must be stored too."""
    manager, _, _ = pool(workers=1)
    pid = ask(manager, "START", name="counter")["pid"]
    for index in range(4):
        ask(manager, "EVENT", pid=pid, name="step", input={"value": index})
    for cmd, params in (("ROLLBACK", {"name": "h2"}), ("EVENT", {"name": "step", "input": {"é": "ü"}}),
                        ("ROLLBACK", {"name": "h2"}), ("HISTORY", {"name": "h1"}), ("EVENT", {"name": "step"})):
        body = ask(manager, cmd, pid=pid, **params)
        stored = store.processes.load(pid)
        assert [{key: step[key] for key in crumb} for step, crumb in
                zip(stored["history"], body["history"], strict=True)] == body["history"]
    assert stored["input"] == {"value": 0}
    assert ask(manager, "ABORT", pid=pid)["result"] == "END"
    assert store.processes.load(pid)["status"] == "ended"
