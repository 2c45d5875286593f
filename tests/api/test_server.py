"""The ROUTER server over real loopback sockets: framing, garbage, concurrency."""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import Future

import msgpack
import pytest
import zmq

import brokerflow
from brokerflow.api.commands import COMMANDS, Command
from brokerflow.api.dispatcher import Dispatcher
from brokerflow.api.server import ApiServer
from brokerflow.api.services import Services
from tests.api.conftest import MAX_FRAME_BYTES
from tests.conftest import wait_until


def _dispatcher(extra: dict[str, Command] | None = None) -> Dispatcher:
    return Dispatcher(Services(store=None, refs=None), {**COMMANDS, **(extra or {})})


def _code(reply: dict) -> str:
    assert reply["success"] is False, reply
    return reply["error"]["code"]


def test_ping_answers_pong_in_msgpack_and_in_json(serve):
    client = serve(_dispatcher()).client()
    expected = {"success": True, "body": {"pong": True, "version": brokerflow.__version__}}
    assert client.call("Ping") == expected
    assert client.call("Ping", as_json=True) == expected


@pytest.mark.parametrize("hold_gil", [True, False])
def test_replies_arrive_whole_on_both_send_paths(serve, hold_gil):
    running = serve(_dispatcher(), hold_gil=hold_gil)
    assert running.server.holds_gil is hold_gil  # on Linux the GIL-holding libzmq path is found
    clients = [running.client() for _ in range(4)]
    expected = {"success": True, "body": {"pong": True, "version": brokerflow.__version__}}
    for _ in range(3):
        for client in clients:
            assert client.call("Ping") == expected
            assert client.call("Ping", as_json=True) == expected


def test_the_bound_endpoint_names_the_real_port():
    server = ApiServer("tcp://127.0.0.1:0", _dispatcher(), MAX_FRAME_BYTES)
    try:
        assert server.endpoint.startswith("tcp://127.0.0.1:")
        assert not server.endpoint.endswith(":0")
    finally:
        server.close()


def test_an_undecodable_json_frame_gets_a_json_bad_request(serve):
    client = serve(_dispatcher()).client()
    reply = client.send_raw(b"{oops")
    assert _code(reply) == "BAD_REQUEST"
    assert "invalid JSON" in reply["error"]["text"]


def test_an_unknown_command_is_named(serve):
    reply = serve(_dispatcher()).client().call("NoSuchThing")
    assert _code(reply) == "UNKNOWN_COMMAND"
    assert "NoSuchThing" in reply["error"]["text"]


def test_multi_frame_garbage_after_the_delimiter_is_a_bad_request_and_the_socket_lives(serve):
    client = serve(_dispatcher()).client()
    reply = client.send_raw(msgpack.packb({"cmd": "Ping"}), b"extra", b"")
    assert _code(reply) == "BAD_REQUEST"
    assert "one frame" in reply["error"]["text"]
    assert client.call("Ping")["success"] is True


def _garbage(rng: random.Random, index: int) -> bytes:
    kind = index % 8
    if kind == 0:
        return rng.randbytes(rng.randint(0, 64))
    if kind == 1:
        return b"{" + rng.randbytes(rng.randint(0, 64))
    if kind == 2:
        return msgpack.packb(rng.choice([1, "x", [1, 2], None, 3.5, True, b"raw"]))
    if kind == 3:
        return msgpack.packb({"cmd": rng.choice([1, None, [], {}, b"x", ""]), "params": {}})
    if kind == 4:
        return msgpack.packb({"cmd": "Ping", "params": rng.choice([1, "x", [1], True])})
    if kind == 5:
        return json.dumps({"cmd": "Ping", "token": rng.choice([1, [], {}, True])}).encode()
    if kind == 6:
        return msgpack.packb({"cmd": "Ping", "pad": b"x" * (MAX_FRAME_BYTES + rng.randint(1, 1000))})
    return rng.randbytes(8) + b"\xc1" + rng.randbytes(8)  # 0xc1 is never valid msgpack


def test_ten_thousand_garbage_frames_each_get_bad_request_then_ping_still_pongs(serve):
    rng = random.Random(20261123)
    client = serve(_dispatcher()).client()
    for index in range(10_000):
        frame = _garbage(rng, index)
        reply = client.send_raw(frame)
        assert _code(reply) == "BAD_REQUEST", (index, frame[:40])
    assert client.call("Ping")["body"]["pong"] is True


def test_a_slow_future_does_not_block_a_ping_from_another_client(serve):
    release = threading.Event()
    started = threading.Event()

    def slow(ctx, params):
        fut: Future = Future()

        def finish():
            started.set()
            release.wait(10)
            fut.set_result({"done": params.get("n")})

        threading.Thread(target=finish, daemon=True).start()
        return fut

    running = serve(_dispatcher({"Slow": Command("Slow", slow, None, auth=False)}))
    slow_client, ping_client = running.client(), running.client()
    slow_client.sock.send(msgpack.packb({"cmd": "Slow", "params": {"n": 7}}))
    assert started.wait(5)
    assert ping_client.call("Ping")["success"] is True
    assert slow_client.sock.poll(50) == 0  # still waiting for its reply
    release.set()
    assert msgpack.unpackb(slow_client.sock.recv()) == {"success": True, "body": {"done": 7}}


def test_a_failing_future_becomes_an_error_envelope(serve):
    def broken(ctx, params):
        fut: Future = Future()
        fut.set_exception(RuntimeError("boom"))
        return fut

    running = serve(_dispatcher({"Broken": Command("Broken", broken, None, auth=False)}))
    reply = running.client().call("Broken")
    assert _code(reply) == "INTERNAL"
    assert "boom" not in reply["error"]["text"]


def test_a_reply_that_cannot_be_encoded_becomes_internal_and_the_socket_lives(serve):
    def circular(ctx, params):
        body: dict = {}
        body["self"] = body
        return body

    client = serve(_dispatcher({"Circular": Command("Circular", circular, None, auth=False)})).client()
    assert _code(client.call("Circular")) == "INTERNAL"
    assert _code(client.call("Circular", as_json=True)) == "INTERNAL"
    assert client.call("Ping")["success"] is True


def test_integers_beyond_msgpack_range_are_sent_as_text(serve):
    huge = Command("Huge", lambda ctx, params: {"n": 2**70}, None, auth=False)
    client = serve(_dispatcher({"Huge": huge})).client()
    assert client.call("Huge") == {"success": True, "body": {"n": str(2**70)}}
    assert client.call("Huge", as_json=True) == {"success": True, "body": {"n": 2**70}}


def test_a_dealer_without_delimiter_is_answered_too(serve):
    running = serve(_dispatcher())
    dealer = running.context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 5000)
    try:
        dealer.connect(running.endpoint)
        dealer.send(msgpack.packb({"cmd": "Ping"}))
        assert msgpack.unpackb(dealer.recv())["body"]["pong"] is True
    finally:
        dealer.close()


def test_many_requests_in_flight_from_many_clients_all_complete(serve):
    pending: list[Future] = []

    def later(ctx, params):
        fut: Future = Future()
        pending.append((fut, params["n"]))
        return fut

    running = serve(_dispatcher({"Later": Command("Later", later, None, auth=False)}))
    clients = [running.client() for _ in range(20)]
    for n, client in enumerate(clients):
        client.sock.send(msgpack.packb({"cmd": "Later", "params": {"n": n}}))
    wait_until(lambda: len(pending) == 20)
    for fut, n in reversed(pending):
        threading.Thread(target=fut.set_result, args=({"n": n},)).start()
    for n, client in enumerate(clients):
        assert msgpack.unpackb(client.sock.recv()) == {"success": True, "body": {"n": n}}


def test_replies_completed_in_bursts_on_other_threads_wake_the_loop_every_time():
    """One wake byte serves a burst of replies; a reply completed after the loop took the
    others must still wake it (with a long poll timeout a lost wake-up would stall 3 s)."""
    pending: list[Future] = []
    later = Command("Later", lambda ctx, params: pending.append(Future()) or pending[-1], None, auth=False)
    context = zmq.Context()
    server = ApiServer("tcp://127.0.0.1:0", _dispatcher({"Later": later}), MAX_FRAME_BYTES, context=context)
    clients = []
    try:
        for _ in range(16):
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(server.endpoint)
            clients.append(sock)
        for round_ in range(20):
            pending.clear()
            for sock in clients:
                sock.send_multipart([b"", msgpack.packb({"cmd": "Later", "params": {}})])
            while len(pending) < len(clients):
                server.poll_once(1000)
            gate = threading.Barrier(len(pending))
            threads = [threading.Thread(target=lambda f=fut, n=n, g=gate: (g.wait(5), f.set_result({"n": n})))
                       for n, fut in enumerate(pending)]
            for thread in threads:
                thread.start()
            sent, started = 0, time.monotonic()
            while sent < len(clients):
                sent += server.poll_once(3000)
                assert time.monotonic() - started < 2.5, f"a reply waited for the poll timeout (round {round_})"
            for thread in threads:
                thread.join(5)
            for sock in clients:
                assert sock.poll(2000)
                sock.recv_multipart()
            assert server.pending == 0
    finally:
        for sock in clients:
            sock.close()
        server.close()
        context.term()


# ---------------------------------------------------------------- client mistakes are BAD_REQUEST-class

def test_a_json_int_past_4300_digits_is_a_bad_request_not_internal(api):
    reply = api.client.send_raw(b'{"cmd": "MngGetWorkflowRule", "params": {"id": ' + b"9" * 5000 + b"}}")
    assert _code(reply) == "BAD_REQUEST"
    assert "4300" in reply["error"]["text"]
    assert api.call("Ping")["success"] is True


def test_a_token_with_a_lone_surrogate_is_a_bad_request_not_internal(api):
    reply = api.client.send_raw(b'{"cmd": "MngGetWorkflowRules", "token": "bf_\\ud800", "params": {}}')
    assert _code(reply) == "BAD_REQUEST"
    assert "surrogate" in reply["error"]["text"]
    paired = b'{"cmd": "MngGetWorkflowRules", "token": "bf_\\ud83d\\ude00", "params": {}}'  # a real pair
    assert _code(api.client.send_raw(paired)) == "UNAUTHENTICATED"


def test_a_lone_surrogate_anywhere_in_a_json_request_is_a_bad_request(api):
    frame = json.dumps({"cmd": "MngAddWorkflowRule", "token": api.admin,
                        "params": {"rule": {"name": "x\ud800", "brand": "alpha", "trigger": "deposit.created"}}})
    assert _code(api.client.send_raw(frame.encode())) == "BAD_REQUEST"


@pytest.mark.parametrize(("rule_id", "as_json"), [(2**63, False), (2**64 - 1, False), (-(2**63) - 1, True)])
def test_an_id_outside_int64_is_a_validation_failure_not_internal(api, rule_id, as_json):
    error = api.call("MngGetWorkflowRule", {"id": rule_id}, as_json=as_json)["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert error["details"][0]["path"] == "id"


def test_a_priority_outside_int64_is_refused_by_rule_validation(api):
    rule = {"name": "r", "brand": "alpha", "trigger": "deposit.created", "priority": 2**63}
    error = api.error("MngAddWorkflowRule", {"rule": rule})
    assert error["code"] == "VALIDATION_FAILED"
    assert [d["path"] for d in error["details"]] == ["priority"]


# ---------------------------------------------------------------- many frames in one message

def test_frames_past_the_kept_few_are_received_and_dropped_not_kept():
    from brokerflow.api.server import KEPT_FRAMES, _recv_request

    context = zmq.Context()
    router, dealer = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    try:
        for sock in (router, dealer):
            sock.setsockopt(zmq.LINGER, 0)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealer.connect(f"tcp://127.0.0.1:{port}")
        dealer.send_multipart([b"", msgpack.packb({"cmd": "Ping"})] + [b"x" * 1024] * 2000)
        assert router.poll(5000) == zmq.POLLIN
        frames, dropped = _recv_request(router)
        assert len(frames) == KEPT_FRAMES  # identity, delimiter, request, then five of the extras
        assert dropped == 3 + 2000 - KEPT_FRAMES
        assert not router.getsockopt(zmq.RCVMORE)
    finally:
        router.close()
        dealer.close()
        context.term()


def test_a_dealer_sending_thousands_of_frames_gets_bad_request_and_the_socket_lives(serve):
    running = serve(_dispatcher())
    dealer = running.context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 5000)
    dealer.connect(running.endpoint)
    try:
        dealer.send_multipart([b"", json.dumps({"cmd": "Ping"}).encode()] + [b"y" * 4096] * 3000)
        delimiter, data = dealer.recv_multipart()
        reply = json.loads(data)
        assert (delimiter, _code(reply)) == (b"", "BAD_REQUEST")
        assert "got 3001" in reply["error"]["text"]
        dealer.send_multipart([b"", msgpack.packb({"cmd": "Ping"})])
        assert msgpack.unpackb(dealer.recv_multipart()[1])["success"] is True
    finally:
        dealer.close()


def test_a_forward_hook_answers_for_another_member_and_a_forwarded_request_is_served_here(serve):
    """``serve --cluster``: what the hook takes is answered with its bytes; what it leaves, or a
    request marked as forwarded, or anything while the hook fails, is served here."""
    from brokerflow.api.server import FORWARDED

    seen: list[bytes] = []

    def forward(frame: bytes) -> Future | None:
        seen.append(frame)
        if b"fail" in frame:
            raise RuntimeError("the hook broke")
        if b"elsewhere" not in frame:
            return None
        done: Future = Future()
        threading.Timer(0.05, done.set_result, [msgpack.packb({"success": True, "body": {"from": "owner"}})]).start()
        return done

    client = serve(_dispatcher(), forward=forward).client()
    assert client.call("EVENT", {"pid": "elsewhere"}) == {"success": True, "body": {"from": "owner"}}
    assert _code(client.call("EVENT", {"pid": "here"})) == "UNAUTHENTICATED"  # served (and refused) here
    assert _code(client.call("EVENT", {"pid": "fail"})) == "UNAUTHENTICATED"
    marked = msgpack.packb({"cmd": "Ping", "params": {"pid": "elsewhere"}})
    assert client.send_raw(FORWARDED, marked)["body"]["pong"] is True  # never forwarded twice
    assert len(seen) == 3
