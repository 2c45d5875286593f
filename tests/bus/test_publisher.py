"""The publisher library's journal and replay option, on real sockets and a real journal file."""

from __future__ import annotations

import msgpack
import pytest
import zmq

from brokerflow.bus.publisher import Publisher


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def ask(context: zmq.Context, endpoint: str, request: dict) -> dict:
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(endpoint)
    sock.send(msgpack.packb(request))
    reply = msgpack.unpackb(sock.recv(), raw=False)
    sock.close()
    return reply


def test_what_is_published_is_journaled_sent_and_replayable_and_a_restart_continues(tmp_path, context):
    journal = str(tmp_path / "publisher.db")
    with Publisher("tcp://127.0.0.1:0", "crm", bind=True, context=context, linger_ms=0, journal=journal,
                   replay_bind="tcp://127.0.0.1:0") as pub:
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(pub.endpoint)
        assert pub.wait_subscribed(timeout_s=5)
        seqs = [pub.publish("customer.push", {"id": n}, id=f"c{n}") for n in range(1, 4)]
        assert seqs == [1, 2, 3]
        assert sub.poll(5000) and msgpack.unpackb(sub.recv_multipart()[1])["seq"] == 1
        reply = ask(context, pub.replay_endpoint, {"cmd": "REPLAY", "source": "crm", "from_seq": 1})
        assert [msgpack.unpackb(p)["id"] for t, p in reply["events"]] == ["c1", "c2", "c3"]
        assert reply["events"][0][0] == b"customer.push" and reply["last_seq"] == 3
    sub.close()

    with Publisher("tcp://127.0.0.1:0", "crm", bind=True, context=context, linger_ms=0, journal=journal,
                   replay_bind="tcp://127.0.0.1:0") as pub:
        assert pub.next_seq == 4
        assert pub.publish("customer.push", {"id": 4}) == 4
        assert ask(context, pub.replay_endpoint, {"cmd": "SOURCES"}) == {
            "sources": {"crm": {"first_seq": 1, "last_seq": 4}}}


def test_a_journal_without_replay_still_continues_the_seqs(tmp_path, context):
    journal = str(tmp_path / "publisher.db")
    with Publisher("tcp://127.0.0.1:0", "a", bind=True, context=context, linger_ms=0, journal=journal) as pub:
        pub.publish("rate.push", {"currency": "EUR", "usd": 1.1})
        assert pub.replay_endpoint is None
    with Publisher("tcp://127.0.0.1:0", "a", bind=True, context=context, linger_ms=0, journal=journal,
                   first_seq=1) as pub:
        assert pub.next_seq == 2


def test_replay_without_a_journal_is_refused(context):
    with pytest.raises(ValueError, match="journal"):
        Publisher("tcp://127.0.0.1:0", "a", bind=True, context=context, replay_bind="tcp://127.0.0.1:0")
