"""The replay endpoint over a real ROUTER socket and a real journal file: paging and hostile requests."""

from __future__ import annotations

import threading

import msgpack
import pytest
import zmq

from brokerflow.bus.journal import Journal
from brokerflow.bus.replay_server import MAX_EVENTS, MAX_REPLY_BYTES, ReplayServer


@pytest.fixture
def served(tmp_path):
    path = str(tmp_path / "journal.db")
    journal = Journal(path)
    journal.append([("mt5", seq, b"trade.push", msgpack.packb({"seq": seq})) for seq in range(1, 7001)], at_ms=1)
    journal.append([("big", seq, b"trade.push", bytes(1 << 20)) for seq in range(1, 21)], at_ms=1)
    journal.close()
    server = ReplayServer("tcp://127.0.0.1:0", path)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,), daemon=True)
    thread.start()
    context = zmq.Context()
    yield server, context
    stop.set()
    thread.join(5)
    server.close()
    context.destroy(linger=0)


def client(context: zmq.Context, endpoint: str, kind: int = zmq.REQ) -> zmq.Socket:
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(endpoint)
    return sock


def ask(sock: zmq.Socket, request: object) -> dict:
    sock.send(request if isinstance(request, bytes) else msgpack.packb(request, use_bin_type=True))
    return msgpack.unpackb(sock.recv(), raw=False)


def test_sources_lists_each_source_with_its_range(served):
    server, context = served
    assert ask(client(context, server.endpoint), {"cmd": "SOURCES"}) == {
        "sources": {"mt5": {"first_seq": 1, "last_seq": 7000}, "big": {"first_seq": 1, "last_seq": 20}}}


def test_replay_pages_through_a_source_by_next_seq(served):
    server, context = served
    sock, seqs, next_seq = client(context, server.endpoint), [], 1
    while next_seq is not None:
        reply = ask(sock, {"cmd": "REPLAY", "source": "mt5", "from_seq": next_seq, "max": 3000})
        assert (reply["first_seq"], reply["last_seq"]) == (1, 7000)
        seqs += [msgpack.unpackb(payload)["seq"] for topic, payload in reply["events"]]
        assert all(topic == b"trade.push" for topic, _ in reply["events"])
        next_seq = reply["next_seq"]
    assert seqs == list(range(1, 7001))


def test_replay_stops_at_to_seq_and_defaults_to_1000_events(served):
    server, context = served
    sock = client(context, server.endpoint)
    reply = ask(sock, {"cmd": "REPLAY", "source": "mt5", "from_seq": 10, "to_seq": 12})
    assert len(reply["events"]) == 3 and reply["next_seq"] is None
    reply = ask(sock, {"cmd": "REPLAY", "source": "mt5", "from_seq": 1})
    assert len(reply["events"]) == 1000 and reply["next_seq"] == 1001


def test_a_huge_max_is_clamped_and_a_reply_is_capped_in_bytes(served):
    server, context = served
    sock = client(context, server.endpoint)
    reply = ask(sock, {"cmd": "REPLAY", "source": "mt5", "from_seq": 1, "max": 2**64 - 1})
    assert len(reply["events"]) == MAX_EVENTS and reply["next_seq"] == MAX_EVENTS + 1
    reply = ask(sock, {"cmd": "REPLAY", "source": "big", "from_seq": 1, "max": 5000})
    assert len(reply["events"]) == MAX_REPLY_BYTES // ((1 << 20) + len(b"trade.push"))
    assert reply["next_seq"] == len(reply["events"]) + 1


def test_from_seq_below_the_range_starts_at_first_seq_and_past_the_end_is_empty(tmp_path, served):
    server, context = served
    sock = client(context, server.endpoint)
    assert ask(sock, {"cmd": "REPLAY", "source": "mt5", "from_seq": 0, "max": 1})["next_seq"] == 2
    reply = ask(sock, {"cmd": "REPLAY", "source": "mt5", "from_seq": 7001})
    assert reply == {"events": [], "next_seq": None, "first_seq": 1, "last_seq": 7000}


HOSTILE = [
    (b"\xc1not msgpack", "BAD_REQUEST"),
    (msgpack.packb([1, 2, 3]), "BAD_REQUEST"),
    (msgpack.packb({"no": "cmd"}), "BAD_REQUEST"),
    (b"x" * (65 * 1024), "BAD_REQUEST"),
    (msgpack.packb({"cmd": "DROP TABLE"}), "UNKNOWN_COMMAND"),
    (msgpack.packb({"cmd": 7}), "UNKNOWN_COMMAND"),
    (msgpack.packb({"cmd": "REPLAY", "source": "nobody", "from_seq": 1}), "NOT_FOUND"),
    (msgpack.packb({"cmd": "REPLAY", "from_seq": 1}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5"}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": b"mt5", "from_seq": 1}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5", "from_seq": True}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5", "from_seq": "1"}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5", "from_seq": 1.0}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5", "from_seq": -1}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5", "from_seq": 2**63}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5", "from_seq": 5, "to_seq": 4}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5", "from_seq": 1, "max": 0}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5", "from_seq": 1, "max": -5}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5", "from_seq": 1, "max": False}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "x" * 300, "from_seq": 1}), "VALIDATION_FAILED"),
    (msgpack.packb({"cmd": "REPLAY", "source": "mt5", "from_seq": 1, "to_seq": [1]}), "VALIDATION_FAILED"),
    (b"\x91" * 100_000, "BAD_REQUEST"),  # nested past any depth, cut by the size cap first
    (b"\x91" * 10_000, "BAD_REQUEST"),  # nested within the size cap
]


@pytest.mark.parametrize(("frame", "code"), HOSTILE)
def test_a_hostile_request_gets_its_error_and_the_socket_keeps_serving(served, frame, code):
    server, context = served
    sock = client(context, server.endpoint)
    reply = ask(sock, frame)
    assert reply["error"]["code"] == code and reply["error"]["text"]
    assert ask(sock, {"cmd": "REPLAY", "source": "mt5", "from_seq": 7000})["next_seq"] is None


def test_multi_frame_garbage_from_req_and_dealer_is_refused(served):
    server, context = served
    req = client(context, server.endpoint)
    req.send_multipart([b"a", b"b", b"c"])
    assert msgpack.unpackb(req.recv())["error"]["code"] == "BAD_REQUEST"
    dealer = client(context, server.endpoint, zmq.DEALER)
    dealer.send_multipart([b"x", b"y"])
    assert msgpack.unpackb(dealer.recv_multipart()[-1])["error"]["code"] == "BAD_REQUEST"
    dealer.send(msgpack.packb({"cmd": "SOURCES"}))
    assert "sources" in msgpack.unpackb(dealer.recv_multipart()[-1], raw=False)


def test_a_frame_over_the_hard_cap_drops_that_peer_only(served):
    server, context = served
    rogue = client(context, server.endpoint, zmq.DEALER)
    rogue.send(bytes(4 << 20))
    assert ask(client(context, server.endpoint), {"cmd": "SOURCES"})["sources"]["mt5"]["last_seq"] == 7000


def test_random_frames_each_get_an_error_and_never_stop_the_socket(served):
    import random

    server, context = served
    sock = client(context, server.endpoint)
    rng = random.Random(14)
    values = [None, True, -1, 0, 2**63, 2**64 - 1, 1.5, "", "mt5", b"mt5", [], {}, [1], {"a": 1}]
    for _ in range(300):
        if rng.random() < 0.5:
            frame = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        else:
            request = {"cmd": rng.choice(["REPLAY", "SOURCES", "replay", 1])}
            for key in rng.sample(["source", "from_seq", "to_seq", "max"], rng.randint(0, 4)):
                request[key] = rng.choice(values)
            frame = msgpack.packb(request, use_bin_type=True)
        reply = ask(sock, frame)
        assert set(reply) in ({"error"}, {"sources"}, {"events", "next_seq", "first_seq", "last_seq"})
        if "error" in reply:
            assert reply["error"]["code"] in ("BAD_REQUEST", "UNKNOWN_COMMAND", "VALIDATION_FAILED", "NOT_FOUND")
    assert server.errors > 100
    assert ask(sock, {"cmd": "SOURCES"})["sources"]["mt5"]["last_seq"] == 7000
