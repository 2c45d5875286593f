"""``api.forwarding``: an HTTP Workflow Machine command for a process another engine owns.

What is forwarded and in which envelope (pure, through the hook), how the owner's reply comes
back, and end to end: a real gateway whose ``Services.http_forward`` is the real forwarder the
shell injects (``app.clusterforward.Forwarder``), in front of a real management API that owns
the processes; the gateway answers the owner's replies with the statuses it gives its own, and
an owner unknown or silent with the management API forwarder's errors.
"""

from __future__ import annotations

import json
from concurrent.futures import Future

import msgpack
import pytest
import requests
import zmq

from brokerflow.api import envelope
from brokerflow.api.dispatcher import Dispatcher
from brokerflow.api.forwarding import forward_process_command
from brokerflow.api.http_gateway import HttpGateway, make_app
from brokerflow.api.services import Services
from brokerflow.app.clusterforward import FORWARD_TIMEOUT_S, Forwarder
from brokerflow.errors import NotFound
from brokerflow.settings import Settings
from brokerflow.workflow.reference import ReferenceData
from tests.api.conftest import MAX_FRAME_BYTES, NOW_MS
from tests.conftest import wait_until


class Hook:
    """The hook's side of the contract: frames it saw; answers with ``reply`` (None: serve here)."""

    def __init__(self, reply: object = None) -> None:
        self.frames: list[bytes] = []
        self.pids: list[str] = []
        self.reply = reply

    def __call__(self, frame: bytes, pid: str) -> Future | None:
        self.frames.append(frame)
        self.pids.append(pid)
        if self.reply is None:
            return None
        done: Future = Future()
        if isinstance(self.reply, BaseException):
            done.set_exception(self.reply)
        else:
            done.set_result(self.reply)
        return done


def _request(cmd: str = "EVENT", **params: object) -> dict:
    return {"cmd": cmd, "token": "bf_caller", "params": {"pid": "p1", "name": "next", **params}}


def test_only_commands_on_an_existing_pid_are_offered_to_the_hook_as_the_management_envelope():
    hook = Hook()
    assert forward_process_command(None, _request()) is None
    for request in (_request("START"), _request("RESTORE"), _request("MngGetFlows"),
                    {"cmd": "EVENT", "token": None, "params": {"name": "next"}},
                    _request(pid=""), _request(pid=7), {"cmd": "EVENT", "params": None}):
        assert forward_process_command(hook, request) is None
    assert hook.frames == []
    request = _request(input={"amount": 1.5, "note": "é", "deep": [1, {"x": None}]})
    assert forward_process_command(hook, request) is None  # the hook said: serve it here
    assert forward_process_command(Hook(ZeroDivisionError()), request) is not None  # a Future failing: in it

    def broken(_frame: bytes, _pid: str) -> Future | None:
        raise RuntimeError("the hook broke")

    assert forward_process_command(broken, request) is None  # a hook that raises: served here, logged
    (frame,) = hook.frames
    assert frame[:1] == b"{" and json.loads(frame) == request  # JSON (the owner answers JSON), the caller's token
    assert hook.pids == ["p1"]  # the pid as given: the hook need not parse the frame again


@pytest.mark.parametrize("reply, code", [
    (b'{"success":true,"body":{"state":"docs"}}', None),
    ({"success": True, "body": {"state": "docs"}}, None),
    (envelope.failure(NotFound("process 'p1' not found")), "NOT_FOUND"),
    (b'{"success":false,"error":{"code":"UNAUTHENTICATED","text":"unknown token"}}', "UNAUTHENTICATED"),
    (msgpack.packb({"success": True, "body": {}}), "INTERNAL"),  # the owner answers a JSON request in JSON
    (b"[1, 2]", "INTERNAL"),
    ({"body": {}}, "INTERNAL"),
    (NotFound("gone"), "NOT_FOUND"),
    (RuntimeError("socket closed"), "INTERNAL"),
])
def test_the_owner_s_reply_comes_back_as_an_envelope_whatever_it_is(reply, code):
    result = forward_process_command(Hook(reply), _request()).result(timeout=5)
    if code is None:
        assert result == {"success": True, "body": {"state": "docs"}}
    else:
        assert result["success"] is False and result["error"]["code"] == code


class Front:
    """A gateway with no process handler of its own: every process command it serves is forwarded."""

    def __init__(self, services: Services, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        services.http_forward = forwarder.forward
        self.gateway = HttpGateway("127.0.0.1", 0, make_app(Dispatcher(services), services)).start()

    def post(self, token: str | None, **params: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(f"{self.gateway.url}/workflow", params=params, headers=headers, timeout=30)

    def close(self) -> None:
        self.gateway.close()
        self.forwarder.close()


@pytest.fixture
def front_services(store) -> Services:
    return Services(store, ReferenceData(), Settings(max_frame_bytes=MAX_FRAME_BYTES), now_ms=lambda: NOW_MS)


def test_the_gateway_answers_for_the_owner_as_if_it_owned_the_process(machine_api, front_services):
    owner = machine_api
    front = Front(front_services, Forwarder(lambda _p: False, lambda _p: owner.running.endpoint, lambda _pid: 3))
    try:
        pid = owner.body("START", {"name": "signup"})["pid"]
        reply = front.post(owner.admin, cmd="EVENT", pid=pid, name="next")
        assert reply.status_code == 200 and reply.json() == {"success": True, "body": reply.json()["body"]}
        assert reply.json()["body"]["state"] == "docs"
        assert owner.seen[-1][2].role == "SESSION_ADMIN"  # the owner authenticated the caller's own token
        dealer = owner.tokens["SESSION_DEALER"]
        assert set(front.post(dealer, cmd="AVAILABLE_EVENTS", pid=pid).json()["body"]["events"]) == {"back", "submit"}
        assert owner.seen[-1][2].role == "SESSION_DEALER"  # never elevated to anyone else's rights
        for token, status, code in ((None, 401, "UNAUTHENTICATED"), ("bf_wrong", 401, "UNAUTHENTICATED"),
                                    (owner.admin, 409, "EVENT_NOT_AVAILABLE")):
            reply = front.post(token, cmd="EVENT", pid=pid, name="fly")
            assert (reply.status_code, reply.json()["error"]["code"]) == (status, code)
        assert front.forwarder.forwarded == 5
        # START stays here: this front has no Workflow Machine, so it says so rather than forward.
        reply = front.post(owner.admin, cmd="START", name="signup")
        assert (reply.status_code, reply.json()["error"]["code"]) == (500, "INTERNAL")
        assert "not available in this process" in reply.json()["error"]["text"]
    finally:
        front.close()


def test_an_owner_unknown_is_conflict_try_again_and_a_silent_one_the_forwarder_s_timeout(front_services):
    unknown = Front(front_services, Forwarder(lambda _p: False, lambda _p: None, lambda _pid: 5))
    try:
        reply = unknown.post("bf_any", cmd="EVENT", pid="p1", name="next")
        assert (reply.status_code, reply.json()["error"]["code"]) == (409, "CONFLICT")
        assert "try again" in reply.json()["error"]["text"]
    finally:
        unknown.close()
    context = zmq.Context.instance()
    silent = context.socket(zmq.ROUTER)  # bound, never read: the owner that does not answer
    silent.setsockopt(zmq.LINGER, 0)
    port = silent.bind_to_random_port("tcp://127.0.0.1")
    front = Front(front_services, Forwarder(lambda _p: False, lambda _p: f"tcp://127.0.0.1:{port}",
                                            lambda _pid: 5, owner="shard", retry_hint="it is started again"))
    try:
        reply = front.post("bf_any", cmd="HISTORY", pid="p1", name="h1")
        assert (reply.status_code, reply.json()["error"]["code"]) == (500, "INTERNAL")
        assert f"the shard owning partition 5 (tcp://127.0.0.1:{port}) did not answer within " \
               f"{FORWARD_TIMEOUT_S:.0f} s" in reply.json()["error"]["text"]
        frames = silent.recv_multipart(zmq.NOBLOCK)  # what reached the owner: marked, the caller's request
        assert frames[-2] == b"brokerflow-forwarded"
        assert json.loads(frames[-1])["token"] == "bf_any"
    finally:
        front.close()
        silent.close(linger=0)



class Held:
    """An owner's API endpoint whose requests the test answers one at a time, when it chooses."""

    def __init__(self) -> None:
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.endpoint = f"tcp://127.0.0.1:{self.sock.bind_to_random_port('tcp://127.0.0.1')}"

    def answer(self) -> dict:
        """The next request that reached it (the caller's), answered with success."""
        assert self.sock.poll(30_000)
        *routing, marker, frame = self.sock.recv_multipart()
        assert marker == b"brokerflow-forwarded"
        self.sock.send_multipart([*routing, b'{"success":true,"body":{"held":true}}'])
        return json.loads(frame)

    def received(self) -> int:
        """How many requests are waiting here unread (taken off the socket)."""
        count = 0
        while self.sock.poll(0):
            self.sock.recv_multipart()
            count += 1
        return count

    def close(self) -> None:
        self.sock.close(linger=0)


def _event(pid: str) -> bytes:
    return json.dumps({"cmd": "EVENT", "token": "bf_caller", "params": {"pid": pid, "name": "next"}}).encode()


def _code(future: Future) -> str | None:
    reply = future.result(timeout=60)
    reply = json.loads(reply) if isinstance(reply, bytes) else reply
    return None if reply["success"] else reply["error"]["code"]


def test_a_silent_owner_costs_one_timeout_per_worker_and_requests_to_others_are_answered():
    silent, healthy = Held(), Held()  # silent: never answered
    owners = {1: silent.endpoint, 2: healthy.endpoint}
    forwarder = Forwarder(lambda _p: False, owners.get, lambda pid: int(pid[0]), workers=2, timeout_s=1.0,
                          suspect_s=600.0)
    try:
        dead = [forwarder.forward(_event(f"1-{n}")) for n in range(8)]  # a burst for the silent owner's partition
        alive = forwarder.forward(_event("2-a"))  # queued behind them
        assert healthy.answer()["params"]["pid"] == "2-a"
        assert _code(alive) is None
        assert [_code(future) for future in dead] == ["INTERNAL"] * 8
        assert "did not answer within 1 s" in json.dumps(dead[-1].result())
        sent = [0]

        def sent_so_far() -> int:
            sent[0] += silent.received()
            return sent[0]
        wait_until(lambda: sent_so_far() >= 1)
        later = forwarder.forward(_event("1-later"))
        assert later.done() and _code(later) == "INTERNAL"  # remembered: failed at once, not queued
        assert sent_so_far() <= 2  # only the first ones (at most one per worker) were ever sent
    finally:
        forwarder.close()
        silent.close()
        healthy.close()


def test_a_request_whose_owner_changed_while_it_waited_is_conflict_try_again():
    held, other = Held(), Held()
    owners = {1: held.endpoint, 2: other.endpoint}
    forwarder = Forwarder(lambda _p: False, lambda p: owners.get(p), lambda pid: int(pid[0]), workers=1)
    try:
        first = forwarder.forward(_event("1-a"))  # takes the only worker until answered
        queued = forwarder.forward(_event("2-a"))
        owners[2] = None  # partition 2 changes hands while its request waits
        assert held.answer()["params"]["pid"] == "1-a"
        assert _code(first) is None
        reply = queued.result(timeout=60)
        assert reply["error"]["code"] == "CONFLICT" and "try again" in reply["error"]["text"]
        assert other.received() == 0  # never sent to the owner it had when it was queued
    finally:
        forwarder.close()
        held.close()
        other.close()


def test_beyond_the_bound_a_request_is_answered_busy_at_once_and_other_owners_are_still_served():
    held, other = Held(), Held()
    owners = {1: held.endpoint, 2: other.endpoint}
    forwarder = Forwarder(lambda _p: False, owners.get, lambda pid: int(pid[0]), workers=1, max_pending=2)
    try:
        waiting = [forwarder.forward(_event(f"1-{n}")) for n in range(2)]  # one in flight, one queued
        refused = forwarder.forward(_event("1-more"))
        assert refused.done()
        reply = refused.result()
        assert reply["error"]["code"] == "CONFLICT" and "busy" in reply["error"]["text"]
        assert "try again" in reply["error"]["text"] and forwarder.busy == 1
        elsewhere = forwarder.forward(_event("2-a"))  # the bound is per owner: this one is queued
        assert {held.answer()["params"]["pid"] for _ in range(2)} == {"1-0", "1-1"}
        assert other.answer()["params"]["pid"] == "2-a" and _code(elsewhere) is None
        assert [_code(future) for future in waiting] == [None, None]
        room = forwarder.forward(_event("1-next"))  # both answered (their futures are done): room again
        assert held.answer()["params"]["pid"] == "1-next" and _code(room) is None
    finally:
        forwarder.close()
        held.close()
        other.close()


def test_a_request_over_64_kib_is_forwarded_from_either_door():
    held = Held()
    forwarder = Forwarder(lambda _p: False, lambda _p: held.endpoint, lambda _pid: 1)
    big = {"note": "x" * 100_000}
    try:
        frame = json.dumps({"cmd": "EVENT", "token": "bf_caller",
                            "params": {"pid": "1-big", "name": "next", "input": big}}).encode()
        management = forwarder.forward(frame)  # the management API's door: the pid read from the frame
        assert held.answer()["params"]["input"] == big and _code(management) is None
        http = forward_process_command(forwarder.forward, {"cmd": "EVENT", "token": "bf_caller",
                                                           "params": {"pid": "1-big", "name": "next", "input": big}})
        assert held.answer()["params"]["input"] == big  # the HTTP doors: the pid handed over as it is
        assert http.result(timeout=60) == {"success": True, "body": {"held": True}}
    finally:
        forwarder.close()
        held.close()
