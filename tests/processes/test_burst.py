"""Process commands applied in a burst (what the management API's loop does with what it read).

A burst applies its commands on the caller's thread, commits their states in one transaction
when it closes and answers only then; a worker thread's command for the same pid waits for
that commit. Real SQLite store and worker threads; a real ROUTER server for the last test.
"""

from __future__ import annotations

import sys
import threading

import msgpack
import pytest
import zmq

from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.processes import FlowCache, start_process_pool
from brokerflow.actors.rules import RunIds
from brokerflow.api.services import Burst
from brokerflow.errors import EventNotAvailable
from tests.conftest import wait_until
from tests.processes.flows import COUNTER

NOW_MS = 1_795_435_200_000


@pytest.fixture
def pool(store):
    stats = StatsRegistry()
    manager = start_process_pool(2, stats, FlowCache(store.flows), store.processes, Pipeline(),
                                 RunIds(store.runs), lambda: NOW_MS, 100, 60.0)
    yield manager, stats
    for worker in manager.workers:
        worker.stop()


def values(history: list[dict]) -> list:
    return [step["value"] for step in history]


def test_a_burst_is_stored_before_it_is_answered_and_keeps_the_order(pool, store):
    manager, stats = pool
    pid = manager.handle("START", {"name": "counter"}, None).result(timeout=10)["pid"]
    burst = Burst()
    replies = [manager.handle("EVENT", {"pid": pid, "name": "step", "input": {"value": v}}, None, burst=burst)
               for v in ("a", "b", "c")]
    replies.append(manager.handle("EVENT", {"pid": pid, "name": "fly"}, None, burst=burst))
    replies.append(manager.handle("AVAILABLE_EVENTS", {"pid": pid}, None, burst=burst))
    assert not any(reply.done() for reply in replies)
    assert values(store.processes.load(pid)["history"]) == [None]  # nothing committed yet
    burst.close()
    assert [values(reply.result(timeout=0)["history"]) for reply in replies[:3]] == [
        [None, "a"], [None, "a", "b"], [None, "a", "b", "c"]]
    with pytest.raises(EventNotAvailable):
        replies[3].result(timeout=0)
    assert replies[4].result(timeout=0)["events"] == ["step", "stop"]
    assert values(store.processes.load(pid)["history"]) == [None, "a", "b", "c"]
    cells = [c for c in stats.snapshot() if c["kind"] == "process"]
    assert sum(c["processed"] for c in cells) == 6 and sum(c["failed"] for c in cells) == 0


def test_a_worker_thread_command_for_the_same_pid_waits_for_the_burst_commit(pool, store):
    manager, stats = pool
    pid = manager.handle("START", {"name": "counter"}, None).result(timeout=10)["pid"]
    burst = Burst()
    in_burst = manager.handle("EVENT", {"pid": pid, "name": "step", "input": {"value": "burst"}}, None,
                              burst=burst)
    told = manager.handle("EVENT", {"pid": pid, "name": "step", "input": {"value": "told"}}, None)
    cell = stats.cell(f"process-worker:{manager.workers.index(manager.worker_for(pid))}", "process")
    wait_until(lambda: cell.active)  # the worker thread has the command and waits for the shard
    assert not told.done()
    burst.close()
    assert values(in_burst.result(timeout=0)["history"]) == [None, "burst"]
    assert values(told.result(timeout=10)["history"]) == [None, "burst", "told"]
    assert values(store.processes.load(pid)["history"]) == [None, "burst", "told"]


def test_a_failed_commit_answers_its_pid_with_the_error_and_the_stored_state_comes_back(pool, store):
    manager, stats = pool
    good, bad = (manager.handle("START", {"name": "counter"}, None).result(timeout=10)["pid"] for _ in range(2))
    store.processes._db.execute_sql(  # a real refusal by the database, for one row only
        "CREATE TRIGGER refuse_poison BEFORE UPDATE ON processes WHEN NEW.state LIKE '%poison%' "
        "BEGIN SELECT RAISE(ABORT, 'poisoned state refused'); END")
    burst = Burst()
    ok = manager.handle("EVENT", {"pid": good, "name": "step", "input": {"value": "fine"}}, None, burst=burst)
    refused = manager.handle("EVENT", {"pid": bad, "name": "step", "input": {"value": "poison"}}, None,
                             burst=burst)
    after = manager.handle("AVAILABLE_EVENTS", {"pid": bad}, None, burst=burst)  # saw the unsaved step
    burst.close()
    assert values(ok.result(timeout=0)["history"]) == [None, "fine"]
    for reply in (refused, after):
        with pytest.raises(Exception, match="poisoned state refused"):
            reply.result(timeout=0)
    activations = sum(c["activations"] for c in stats.snapshot() if c["kind"] == "process")
    body = manager.handle("EVENT", {"pid": bad, "name": "step", "input": {"value": "next"}}, None).result(timeout=10)
    assert values(body["history"]) == [None, "next"]  # reloaded: the refused step never happened
    assert sum(c["activations"] for c in stats.snapshot() if c["kind"] == "process") == activations + 1
    assert values(store.processes.load(good)["history"]) == [None, "fine"]


def test_pipelined_requests_of_one_peer_are_each_answered_in_order_and_all_stored(start_engine):
    """A DEALER sends many EVENTs at once, so the server reads several of them in one burst."""
    running = start_engine()
    running.add_flows(COUNTER)
    pid = running.api.call("START", {"name": "counter"})["pid"]
    count = 50
    with zmq.Context() as context, context.socket(zmq.DEALER) as dealer:
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(running.engine.api_endpoint)
        for index in range(count):
            request = {"cmd": "EVENT", "token": running.reader,
                       "params": {"pid": pid, "name": "step", "input": {"value": index}}}
            dealer.send_multipart([b"", msgpack.packb(request)])
        replies = []
        for _ in range(count):
            assert dealer.poll(20_000), "no reply"
            empty, frame = dealer.recv_multipart()
            replies.append(msgpack.unpackb(frame))
    assert all(reply["success"] for reply in replies)
    assert [reply["body"]["history"][-1]["value"] for reply in replies] == [str(i) for i in range(count)]
    history = running.api.call("HISTORY", {"pid": pid, "name": "h1"})["history"]
    assert values(history) == [None, *(str(i) for i in range(count))]
    assert running.engine.store.processes.load(pid)["history"][-1]["value"] == str(count - 1)


def test_the_counters_lose_no_command_when_both_doors_count_at_once(pool):
    """The burst path counts on the API thread into the worker's cell; the worker counts too."""
    manager, stats = pool
    pids = [manager.handle("START", {"name": "counter"}, None).result(timeout=10)["pid"] for _ in range(4)]
    rounds = 150

    def bursts() -> None:
        for _ in range(rounds):
            burst = Burst()
            for pid in pids:
                manager.handle("AVAILABLE_EVENTS", {"pid": pid}, None, burst=burst)
            burst.close()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # thread switches everywhere: a lost update shows at once
    try:
        thread = threading.Thread(target=bursts)
        thread.start()
        told = [manager.handle("AVAILABLE_EVENTS", {"pid": pid}, None) for _ in range(rounds) for pid in pids]
        thread.join(30)
        for reply in told:
            reply.result(timeout=10)
    finally:
        sys.setswitchinterval(switch)
    cells = [c for c in stats.snapshot() if c["kind"] == "process"]
    assert sum(c["processed"] for c in cells) == len(pids) * (1 + 2 * rounds)
