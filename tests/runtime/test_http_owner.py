"""The HTTP gateway reaches the owner of a Workflow Machine process (PROTOCOL section 8).

Real ``brokerflow serve --shards 2`` (HTTP on shard 0 only) and real ``serve --cluster`` members
(PostgreSQL): a process another shard or member owns is driven to its end over real HTTP, with
the same statuses and error shapes as a process the gateway's own engine owns; the caller's own
token is what the owner checks (a wrong or brand-scoped token is refused there); ``START`` over
HTTP draws a pid the gateway's engine owns; a process whose partition moved to a member that
joined later is still reached through the member it was started on.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid

import pytest

from brokerflow.errors import BrokerflowError, NotFound
from brokerflow.workflow.partitions import partition_of, pid_key, shard_of
from tests.conftest import free_port, wait_until
from tests.processes.conftest import Door, Http
from tests.relayed import RelayedUpstream
from tests.runtime.test_cluster import CLI, Member, make_token, split_between
from tests.runtime.test_serve_shards import Sharded

pytestmark = pytest.mark.timeout(300)

FLOW = {"name": "counter", "initial": "counting", "states": {
    "counting": {"on": {"step": "counting", "stop": "stopped"}}, "stopped": {"final": True}}}


def shard_of_pid(pid: str) -> int:
    return shard_of(partition_of(pid_key(pid), 64), 2)


def http_up(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:
            return json.loads(response.read())["status"] == "ok"
    except OSError:
        return False


def scoped_token(db: str, brand: str) -> str:
    return subprocess.run([*CLI, "token", "create", "--role", "SESSION_ADMIN", "--brand", brand, "--db", db],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def drive_to_the_end(http: Door, pid: str) -> None:
    """The counter's life over HTTP: a step, what it may do next, the stop, and nothing after."""
    assert http.ok("EVENT", pid=pid, name="step")["state"] == "counting"
    assert "stop" in http.ok("AVAILABLE_EVENTS", pid=pid)["events"]
    assert http.ok("HISTORY", pid=pid, name="h2")["step"]["event"] == "step"
    http.ok("EVENT", pid=pid, name="stop")
    assert http.ok("AVAILABLE_EVENTS", pid=pid)["events"] == []


def test_http_on_shard_0_drives_a_process_shard_1_owns_as_its_own(tmp_path):
    port = free_port()
    serve = Sharded(tmp_path, "--http", f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    http = Door(Http(base, serve.token))
    try:
        wait_until(lambda: http_up(base), timeout_s=30, interval_s=0.1)
        serve.client.call("MngAddFlow", {"flow": FLOW})

        def started_on(shard: int) -> str | None:  # START goes round-robin; a shard may not know the flow yet
            try:
                pid = serve.client.call("START", {"name": "counter"})["pid"]
            except BrokerflowError:
                return None
            return pid if shard_of_pid(pid) == shard else None
        near = wait_until(lambda: started_on(0), timeout_s=20, interval_s=0.05)
        far = wait_until(lambda: started_on(1), timeout_s=20, interval_s=0.05)

        # Refusals: the owner answers them, with the status and shape shard 0 gives for its own.
        for pid in (near, far):
            assert http.fail("EVENT", "EVENT_NOT_AVAILABLE", 409, pid=pid, name="fly")["code"]
            http.fail("EVENT", "UNAUTHENTICATED", 401, pid=pid, name="step", token="not-a-token")
            http.fail("EVENT", "UNAUTHENTICATED", 401, pid=pid, name="step", token=None)
        beta = scoped_token(serve.db, "beta")  # the caller's own rights reach the owner: never elevated
        http.fail("EVENT", "ACCESS_DENIED", 403, pid=far, name="step", token=beta)
        ghost = next(p for p in (uuid.uuid4().hex for _ in range(100)) if shard_of_pid(p) == 1)
        http.fail("EVENT", "NOT_FOUND", 404, pid=ghost, name="step")
        with pytest.raises(NotFound):  # the refused commands moved nothing: START's step is still the last
            serve.client.call("HISTORY", {"pid": far, "name": "h2"})

        # An input over 64 KiB (the broker's old parse limit): still routed to the owner, from both doors.
        heavy = wait_until(lambda: started_on(1), timeout_s=20, interval_s=0.05)
        note = {"note": "x" * 100_000}
        assert http.ok("EVENT", pid=heavy, name="step", input=note)["state"] == "counting"
        assert serve.client.call("EVENT", {"pid": heavy, "name": "step", "input": note})["state"] == "counting"

        for pid in (near, far):
            drive_to_the_end(http, pid)
        assert serve.client.call("AVAILABLE_EVENTS", {"pid": far})["events"] == []  # one process, on shard 1

        started = [http.ok("START", name="counter")["pid"] for _ in range(6)]
        assert {shard_of_pid(pid) for pid in started} == {0}  # START over HTTP draws pids shard 0 owns
    finally:
        code = serve.stop()
    assert code == 0, serve.log()


def test_http_on_one_cluster_member_drives_processes_the_other_owns_rebalance_included(tmp_path, pg_url):
    relayed = RelayedUpstream(str(tmp_path / "journal.db"))
    token = make_token(pg_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    http = Door(Http(base, token))
    members: list[Member] = []
    try:
        relayed.wait_subscribed()
        a = Member("a", pg_url, token, relayed, tmp_path, "--http", f"127.0.0.1:{port}")
        members.append(a)
        wait_until(lambda: len(a.owned()) == 64, timeout_s=30, interval_s=0.2)
        wait_until(lambda: http_up(base), timeout_s=30, interval_s=0.1)
        a.call("MngAddFlow", {"flow": FLOW})
        before = [http.ok("START", name="counter")["pid"] for _ in range(16)]  # all a's while it is alone

        b = Member("b", pg_url, token, relayed, tmp_path)
        members.append(b)
        split_between(a, b)  # b took half the partitions: processes started on a moved with them
        moved = [pid for pid in before if partition_of(pid_key(pid), 64) in b.owned()]
        assert moved, "none of 16 processes moved with 32 of 64 partitions"

        def started_on_b() -> str | None:
            try:
                return b.call("START", {"name": "counter"})["pid"]
            except BrokerflowError:  # the flow not there yet: asked again
                return None
        pid = wait_until(started_on_b, timeout_s=10, interval_s=0.2)
        assert partition_of(pid_key(pid), 64) in b.owned()

        # a learns who owns what once a lease round (1 s): until then the answer is CONFLICT "try again".
        def reached(pid: str) -> bool:
            status, reply = http.send("AVAILABLE_EVENTS", pid=pid)
            if status == 200:
                return True
            assert reply["error"]["code"] == "CONFLICT" and "try again" in reply["error"]["text"], reply
            return False
        for owned_by_b in (pid, moved[0]):
            wait_until(lambda p=owned_by_b: reached(p), timeout_s=15, interval_s=0.1)

        http.fail("EVENT", "UNAUTHENTICATED", 401, pid=pid, name="step", token="not-a-token")
        http.fail("EVENT", "EVENT_NOT_AVAILABLE", 409, pid=pid, name="fly")
        http.fail("EVENT", "ACCESS_DENIED", 403, pid=pid, name="step", token=scoped_token(pg_url, "beta"))
        for owned_by_b in (pid, moved[0]):
            drive_to_the_end(http, owned_by_b)
            assert b.call("AVAILABLE_EVENTS", {"pid": owned_by_b})["events"] == []
        assert a.cluster()["forwarded"] >= 13  # every command above for b's processes went to b

        started = http.ok("START", name="counter")["pid"]
        assert partition_of(pid_key(started), 64) in a.owned()  # START over HTTP stays on a
    finally:
        codes = [member.stop() for member in members]
        relayed.close()
    assert codes == [0, 0], "\n".join(member.log() for member in members)
