"""The API broker of ``serve --shards``: a pid's request to its owner, the rest round-robin, replies back."""

from __future__ import annotations

import json
import threading

import msgpack
import pytest
import zmq

from brokerflow.api.broker import ApiBroker, request_pid
from brokerflow.workflow.partitions import partition_of


@pytest.mark.parametrize(("frame", "pid"), [
    (msgpack.packb({"cmd": "EVENT", "params": {"pid": "ab"}}), "ab"),
    (json.dumps({"cmd": "EVENT", "params": {"pid": "ab"}}).encode(), "ab"),
    (msgpack.packb({"cmd": "START", "params": {"name": "x"}}), None),
    (msgpack.packb({"cmd": "EVENT", "params": {"pid": 5}}), None),
    (msgpack.packb({"cmd": "EVENT", "params": {"pid": ""}}), None),
    (msgpack.packb({"cmd": "EVENT", "params": ["pid"]}), None),
    (msgpack.packb([1, 2]), None),
    (b"{not json", None),
    (b"\xc1\xff", None),
    (b"", None),
    (json.dumps({"params": {"pid": "ab", "input": {"note": "x" * 70_000}}}).encode(), "ab"),  # over 64 KiB
])
def test_request_pid(frame: bytes, pid: str | None) -> None:
    assert request_pid(frame, 1 << 20) == pid


def test_a_frame_over_the_engine_s_cap_is_not_parsed() -> None:
    frame = json.dumps({"params": {"pid": "ab", "input": {"note": "x" * 2000}}}).encode()
    assert request_pid(frame, len(frame)) == "ab"
    assert request_pid(frame, len(frame) - 1) is None  # whoever serves it refuses it: round-robin


class FakeShard:
    """A ROUTER answering each request with its own index, as a shard's ApiServer answers."""

    def __init__(self, context: zmq.Context, index: int) -> None:
        self.sock = context.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:0")
        self.endpoint = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.index = index

    def answer(self) -> bytes:
        assert self.sock.poll(5000)
        *envelope, body = self.sock.recv_multipart()
        self.sock.send_multipart([*envelope, f"shard{self.index}".encode()])
        return body


def test_pids_go_to_their_owner_and_the_rest_round_robin() -> None:
    context = zmq.Context()
    shards = [FakeShard(context, 0), FakeShard(context, 1)]
    broker = ApiBroker("tcp://127.0.0.1:0", [s.endpoint for s in shards], 64, 1 << 20, context)
    stop = threading.Event()
    thread = threading.Thread(target=broker.run, args=(stop,), daemon=True)
    thread.start()
    client = context.socket(zmq.REQ)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(broker.endpoint)
    try:
        pids = [f"pid{n}" for n in range(12)]
        for pid in pids:
            client.send(msgpack.packb({"cmd": "EVENT", "params": {"pid": pid}}))
            owner = partition_of(f"p:{pid}", 64) % 2
            assert msgpack.unpackb(shards[owner].answer())["params"]["pid"] == pid
            assert client.recv() == f"shard{owner}".encode()
        big = {"cmd": "EVENT", "params": {"pid": "pid7", "input": {"note": "x" * 200_000}}}  # under the 1 MiB cap
        client.send(msgpack.packb(big))
        owner = partition_of("p:pid7", 64) % 2
        assert msgpack.unpackb(shards[owner].answer()) == big  # the owner, not round-robin
        assert client.recv() == f"shard{owner}".encode()
        poller = zmq.Poller()
        for shard in shards:
            poller.register(shard.sock, zmq.POLLIN)
        seen = []
        for _ in range(4):
            client.send(b"{broken")  # no pid to be found: round-robin, and the shard answers the error
            ready = dict(poller.poll(5000))
            shard = next(shard for shard in shards if shard.sock in ready)
            assert shard.answer() == b"{broken"
            seen.append(shard.index)
            assert client.recv() == f"shard{shard.index}".encode()
        assert sorted(seen) == [0, 0, 1, 1]
    finally:
        stop.set()
        thread.join(timeout=5)
        client.close()
        for shard in shards:
            shard.sock.close()
        context.term()
