"""Sends through the libzmq pyzmq loaded, with the GIL held: whole messages, pyzmq's errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from brokerflow.bus._libzmq import multipart_sender


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def test_a_message_of_many_frames_arrives_whole_and_in_order(context):
    pull, push = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    send = multipart_sender(push)
    assert send is not None  # Linux: the library pyzmq loaded is found
    messages = [[b"a", b"", b"x" * 70_000], [b"single"], [b"1", b"2"]]
    for frames in messages:
        send(frames)
    pull.setsockopt(zmq.RCVTIMEO, 5000)
    assert [pull.recv_multipart() for _ in messages] == messages


def test_a_full_queue_raises_again(context):
    push = context.socket(zmq.PUSH)
    push.bind("tcp://127.0.0.1:*")  # no peer: nowhere to queue
    with pytest.raises(zmq.Again):
        multipart_sender(push)([b"a", b"b"])


def test_another_failure_raises_zmq_error(context):
    rep = context.socket(zmq.REP)
    rep.bind("tcp://127.0.0.1:*")
    with pytest.raises(zmq.ZMQError) as failure:
        multipart_sender(rep)([b"no request was read"])  # REP may not send first: EFSM
    assert not isinstance(failure.value, zmq.Again)


def test_a_frame_that_is_not_bytes_fails_before_anything_is_sent(context):
    pull, push = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    send = multipart_sender(push)
    for bad in ([b"topic", bytearray(b"payload")], [b"topic", "text"]):
        with pytest.raises(TypeError):
            send(bad)
    send([b"whole", b"message"])
    pull.setsockopt(zmq.RCVTIMEO, 5000)
    assert pull.recv_multipart() == [b"whole", b"message"]  # no half message went out before it


def test_a_closed_socket_raises_instead_of_touching_freed_memory(context):
    push = context.socket(zmq.PUSH)
    send = multipart_sender(push)
    push.close(linger=0)
    with pytest.raises(zmq.ZMQError):
        send([b"late"])
