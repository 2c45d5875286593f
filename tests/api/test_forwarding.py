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


class Hook:
    """The hook's side of the contract: frames it saw; answers with ``reply`` (None: serve here)."""

    def __init__(self, reply: object = None) -> None:
        self.frames: list[bytes] = []
        self.reply = reply

    def __call__(self, frame: bytes) -> Future | None:
        self.frames.append(frame)
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

    def broken(_frame: bytes) -> Future | None:
        raise RuntimeError("the hook broke")

    assert forward_process_command(broken, request) is None  # a hook that raises: served here, logged
    (frame,) = hook.frames
    assert frame[:1] == b"{" and json.loads(frame) == request  # JSON (the owner answers JSON), the caller's token


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

