"""bus._xpub: the XPUB side takes subscriptions of a sane size only, and normal ones still work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from brokerflow.bus._xpub import MAX_SUBSCRIPTION_BYTES, SubscriptionCounter, last_endpoint, open_xpub
from tests.conftest import wait_until


@pytest.fixture
def xpub() -> Iterator[tuple[zmq.Context, zmq.Socket]]:
    ctx = zmq.Context()
    sock = open_xpub(ctx, "tcp://127.0.0.1:0", bind=True, hwm=1000, linger_ms=0)
    yield ctx, sock
    sock.close(linger=0)
    ctx.destroy(linger=0)


def _sub(ctx: zmq.Context, endpoint: str, prefix: bytes) -> zmq.Socket:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, prefix)
    sub.connect(endpoint)
    return sub


def test_a_huge_subscription_never_reaches_the_publisher_and_its_peer_is_dropped(xpub):
    ctx, sock = xpub
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    big = _sub(ctx, last_endpoint(sock), b"x" * 100_000)
    seen: dict = {"disconnected": False, "sizes": []}

    def settled() -> bool:
        # Either outcome ends the wait: the peer dropped (the fix) or its subscription read.
        while monitor.poll(0):
            seen["disconnected"] |= recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        while sock.poll(0):
            seen["sizes"].append(len(sock.recv()))
        return seen["disconnected"] or any(size > MAX_SUBSCRIPTION_BYTES for size in seen["sizes"])

    wait_until(settled, timeout_s=10)
    assert seen["disconnected"]
    assert all(size <= MAX_SUBSCRIPTION_BYTES for size in seen["sizes"])
    big.close(linger=0)
    sock.disable_monitor()
    monitor.close(linger=0)


def test_normal_subscriptions_still_arrive_and_receive_messages(xpub):
    ctx, sock = xpub
    sub = _sub(ctx, last_endpoint(sock), b"trade.")
    counter = SubscriptionCounter()
    assert counter.wait(sock, 1, timeout_s=10)
    sock.send_multipart([b"trade.push", b"payload"])
    assert sub.poll(10_000)
    assert sub.recv_multipart() == [b"trade.push", b"payload"]
    sub.close(linger=0)
