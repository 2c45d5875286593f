from __future__ import annotations

import threading
from collections.abc import Iterator

import msgpack
import pytest
import zmq

from brokerflow.bus.outbound import Outbound
from tests.conftest import wait_until


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.term()


@pytest.fixture(params=[True, False], ids=["gil-held", "pyzmq"])
def outbound(context, request) -> Iterator[Outbound]:
    out = Outbound("tcp://127.0.0.1:0", context=context, linger_ms=0, hold_gil=request.param)
    yield out
    out.close()


@pytest.fixture
def subscriber(context, outbound) -> Iterator[zmq.Socket]:
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1_000_000)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(outbound.bound_endpoint)
    assert outbound.wait_subscribed(timeout_s=5)
    yield sock
    sock.close(linger=0)


def receive(sock: zmq.Socket, count: int) -> list[tuple[str, dict]]:
    got: list[tuple[str, dict]] = []

    def more() -> bool:
        while sock.poll(0):
            topic, payload = sock.recv_multipart()
            got.append((topic.decode(), msgpack.unpackb(payload)))
        return len(got) >= count

    wait_until(more)
    return got


def test_bound_endpoint_reports_the_real_port(outbound):
    assert outbound.bound_endpoint.startswith("tcp://127.0.0.1:")
    assert not outbound.bound_endpoint.endswith(":0")


def test_a_subscriber_receives_two_frame_msgpack_messages(outbound, subscriber):
    payload = {"manager_id": 7, "message": "big deposit", "rule_id": 1, "run_id": 2, "brand": "acme"}
    changed = {"customer_id": 5, "changes": {"risk_level": "high"}, "rule_id": 1, "run_id": 2}
    outbound.send("notify.manager", payload)
    outbound.send("customer.changed", changed)
    assert receive(subscriber, 2) == [("notify.manager", payload), ("customer.changed", changed)]


def test_concurrent_senders_never_interleave_frames(outbound, subscriber):
    def sender(n: int) -> None:
        for i in range(500):
            outbound.send(f"kyc.changed.{n}", {"customer_id": i, "thread": n})

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = receive(subscriber, 2000)
    assert len(got) == 2000
    assert all(topic == f"kyc.changed.{payload['thread']}" for topic, payload in got)
    for n in range(4):
        assert [p["customer_id"] for t, p in got if p["thread"] == n] == list(range(500))
    assert outbound.sent == 2000


def test_send_after_close_is_a_no_op(context):
    out = Outbound("tcp://127.0.0.1:0", context=context, linger_ms=0)
    out.close()
    out.send("notify.manager", {"manager_id": 1})


def test_a_port_already_in_use_raises_and_leaks_nothing(outbound):
    with pytest.raises(zmq.ZMQError):
        Outbound(outbound.bound_endpoint, linger_ms=0)


def test_the_frames_go_out_without_releasing_the_gil_on_linux(context):
    out = Outbound("tcp://127.0.0.1:0", context=context, linger_ms=0)
    try:
        assert out.holds_gil
    finally:
        out.close()


def test_send_many_publishes_every_payload_in_order_and_counts_them(outbound, subscriber):
    payloads = [{"manager_id": i, "message": f"m{i}", "rule_id": 1, "run_id": i, "brand": "b"} for i in range(3000)]
    outbound.send_many("notify.manager", payloads)
    outbound.send_many("notify.manager", [])
    got = receive(subscriber, 3000)
    assert got == [("notify.manager", p) for p in payloads]
    assert outbound.sent == 3000


def test_a_payload_msgpack_cannot_encode_raises_and_leaves_no_half_message(outbound, subscriber):
    with pytest.raises(TypeError):
        outbound.send_many("kyc.changed", [{"customer_id": 1}, {"customer_id": object()}, {"customer_id": 3}])
    outbound.send("kyc.changed", {"customer_id": 4})
    assert receive(subscriber, 2) == [("kyc.changed", {"customer_id": 1}), ("kyc.changed", {"customer_id": 4})]
    assert outbound.sent == 2


def test_past_the_hwm_messages_are_dropped_and_sending_never_blocks(context):
    out = Outbound("tcp://127.0.0.1:0", context=context, hwm=10, linger_ms=0)
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 10)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(out.bound_endpoint)
    try:
        assert out.wait_subscribed(timeout_s=5)
        out.send_many("notify.manager", ({"n": i, "pad": "x" * 4000} for i in range(20_000)))
        assert out.sent == 20_000
        got = receive(sock, 1)
        while sock.poll(200):
            got.extend(receive(sock, 1))
        assert 1 <= len(got) < 20_000
    finally:
        sock.close(linger=0)
        out.close()
