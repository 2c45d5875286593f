"""bus._drain: the GIL-keeping reader and pyzmq's give the same frames, two at most per message."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import zmq

from brokerflow.bus import _libzmq
from brokerflow.bus._drain import EXTRA_FRAMES, open_drain
from brokerflow.bus.codec import decode
from brokerflow.errors import MalformedEvent
from tests.conftest import wait_until

MESSAGES = [
    [b"trade.push", b"\x81\xa6record\x80"],
    [b"one frame only"],
    [b"a", b"b", b"c"],
    [b"", b""],
    [b"a", b"b", b"c", b"d"],
    [b"topic", b"x" * 60_000],
    [b"last", b"\x00\x01\x02"],
]


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    """A PUSH socket connected to a PULL socket bound on loopback."""
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(f"tcp://127.0.0.1:{port}")
    yield push, pull
    push.close(linger=0)
    pull.close(linger=0)
    ctx.term()


def collect(drain, expected: int, limit: int = 1000) -> list[list[bytes]]:
    got: list[list[bytes]] = []

    def more() -> bool:
        got.extend(drain(limit))
        return len(got) >= expected

    wait_until(more)
    return got


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the raw reader finds libzmq through /proc")
def test_on_linux_the_raw_reader_is_the_one_in_use(pair):
    assert _libzmq.loaded() is not None
    assert open_drain(pair[1], 1 << 20).__qualname__.startswith("_raw_drain")
    assert open_drain(pair[1], 1 << 20, raw=False).__qualname__.startswith("_pyzmq_drain")


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "pyzmq"])
def test_every_message_comes_back_with_its_frames_in_order(pair, raw):
    push, pull = pair
    for frames in MESSAGES:
        push.send_multipart(frames)
    expected = [frames if len(frames) <= 2 else [*frames[:2], EXTRA_FRAMES] for frames in MESSAGES]
    assert collect(open_drain(pull, 1 << 20, raw=raw), len(MESSAGES)) == expected


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "pyzmq"])
def test_frames_past_the_second_are_dropped_uncopied_and_the_message_is_malformed(pair, raw):
    # MAXMSGSIZE caps each frame, not the message: 64 frames of 64 KiB pass it, and libzmq
    # holds them whole; the drain must not copy them again into Python bytes.
    push, pull = pair
    push.send_multipart([b"trade.push", b"\x80", *[b"z" * 65536] * 64])
    push.send_multipart([b"next", b"ok"])
    got = collect(open_drain(pull, 1 << 16, raw=raw), 2)
    assert got == [[b"trade.push", b"\x80", EXTRA_FRAMES], [b"next", b"ok"]]
    with pytest.raises(MalformedEvent, match="expected 2 frames \\[topic, payload\\], got more"):
        decode(got[0], 0, 1 << 16)


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "pyzmq"])
def test_a_drain_takes_at_most_its_limit_and_leaves_the_rest_queued(pair, raw):
    push, pull = pair
    for index in range(25):
        push.send_multipart([b"t", str(index).encode()])
    drain = open_drain(pull, 1 << 20, raw=raw)
    wait_until(lambda: pull.poll(0))
    first = drain(10)
    assert 1 <= len(first) <= 10
    rest = collect(drain, 25 - len(first))
    assert [int(frames[1]) for frames in first + rest] == list(range(25))


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "pyzmq"])
def test_an_empty_queue_gives_an_empty_list(pair, raw):
    assert open_drain(pair[1], 1 << 20, raw=raw)(100) == []


def test_a_frame_longer_than_the_buffer_comes_back_cut_one_byte_past_the_limit(pair):
    push, pull = pair
    push.send_multipart([b"topic", b"y" * 500])
    push.send_multipart([b"next", b"ok"])
    got = collect(open_drain(pull, 100), 2)
    assert got == [[b"topic", b"y" * 101], [b"next", b"ok"]]


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "pyzmq"])
def test_a_closed_socket_raises_instead_of_touching_freed_memory(pair, raw):
    push, pull = pair
    drain = open_drain(pull, 1 << 20, raw=raw)
    pull.close(linger=0)
    with pytest.raises(zmq.ZMQError):
        drain(10)
