"""State ``actions`` run on entry through the same action actors as rules: a notification goes
out on the PUB socket and the run is in the run log, with ``process:<flow>.<state>`` as trigger."""

from __future__ import annotations

import msgpack
import pytest
import zmq

from tests.conftest import wait_until
from tests.processes.flows import MANAGER_ID


@pytest.fixture
def subscriber(running):
    context = zmq.Context()
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"notify.manager")
    sock.connect(running.engine.outbound.bound_endpoint)
    assert running.engine.outbound.wait_subscribed(timeout_s=5, subscribers=1)
    yield sock
    sock.close(linger=0)
    context.term()


def receive(sock, timeout_ms: int = 5000) -> tuple[str, dict]:
    assert sock.poll(timeout_ms), "nothing on the outbound PUB"
    topic, payload = sock.recv_multipart()
    return topic.decode(), msgpack.unpackb(payload, raw=False)


def runs_of(running, pid: str) -> list[dict]:
    return [r for r in running.api.call("MngGetWorkflowRunLog", {})["runs"] if r["event_id"] == pid]


@pytest.mark.parametrize("kind", ["rep", "http"])
def test_entering_a_state_with_a_notification_publishes_it_and_logs_the_run(running, subscriber, kind):
    door = running.door(kind)
    pid = door.ok("START", name="onboarding", input={"email": "a@b.c"})["pid"]
    assert not subscriber.poll(200)  # personal has no actions
    door.ok("EVENT", pid=pid, name="next")
    topic, note = receive(subscriber)
    assert topic == "notify.manager"
    assert (note["manager_id"], note["message"], note["rule_id"]) == (MANAGER_ID, "a@b.c reached docs", None)

    runs = wait_until(lambda: runs_of(running, pid))
    assert len(runs) == 1
    run = runs[0]
    assert (run["trigger"], run["status"], run["rule_id"], run["id"]) == (
        "process:onboarding.docs", "success", None, note["run_id"])
    assert run["actions"][0]["type"] == "notify.manager" and run["actions"][0]["status"] == "success"


def test_every_entry_runs_the_actions_again_and_rollback_runs_none(running, subscriber):
    door = running.door("rep")
    pid = door.ok("START", name="onboarding", input={"email": "x@y.z"})["pid"]
    door.ok("EVENT", pid=pid, name="next")
    receive(subscriber)
    door.ok("EVENT", pid=pid, name="back")
    door.ok("EVENT", pid=pid, name="next")
    receive(subscriber)
    door.ok("ROLLBACK", pid=pid, name="h2")  # back to docs without entering it
    door.ok("RESTORE", name="onboarding", input={"state": "docs", "email": "r@s.t"})
    assert receive(subscriber)[1]["message"] == "r@s.t reached docs"
    assert not subscriber.poll(200)
    assert len(wait_until(lambda: len(runs_of(running, pid)) == 2 and runs_of(running, pid))) == 2


def test_a_failing_state_action_fails_its_run_not_the_process(running):
    nobody = {"name": "lonely", "initial": "a", "states": {
        "a": {"on": {"go": "b"}}, "b": {"on": {"go": "c"}, "actions": [
            {"type": "notify.manager", "params": {"message": "no one to tell"}}]}, "c": {"final": True}}}
    running.add_flows(nobody)
    door = running.door("rep")
    pid = door.ok("START", name="lonely")["pid"]
    assert door.ok("EVENT", pid=pid, name="go")["state"] == "b"
    run = wait_until(lambda: runs_of(running, pid))[0]
    assert run["status"] == "failed" and "no manager to notify" in run["actions"][0]["error"]
    assert door.ok("EVENT", pid=pid, name="go") == {"pid": pid, "result": "END"}
