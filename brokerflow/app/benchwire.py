"""The benchmark's wire: a publisher process that replays the event mix, and a bare SUB.

Shared by the ceiling, the latency floor and the relay's figures (``bench``, ``benchrelay``),
so the transport is measured the same way everywhere.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import time
from pathlib import Path

import msgpack
import zmq

from brokerflow.app import benchdata

__all__ = ["bare_sub", "free_port", "receive_all", "spawn_publisher"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _publish(endpoint: str, count: int, rate: float, source: str, prefix: str, out_path: str, bind: bool) -> None:
    """Runs in a child process: publish the stream (paced when ``rate`` > 0), write id → ts."""
    from brokerflow.bus.publisher import Publisher

    stream = benchdata.events(count, seed=hash(prefix) & 0xFFFF)
    stamps: dict[str, int] = {}
    with Publisher(endpoint, source=source, bind=bind) as publisher:
        publisher.wait_subscribed(timeout_s=10)  # ZeroMQ slow joiner: lose nothing at the start
        started = time.perf_counter()
        for index, (topic, record, event) in enumerate(stream):
            if rate > 0:
                due = started + index / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            ts = int(time.time() * 1000)
            event_id = f"{prefix}{index}"
            publisher.publish(topic, record, event=event, id=event_id, ts_ms=ts)
            stamps[event_id] = ts
        time.sleep(0.5)  # let the last frames leave before the socket closes
    Path(out_path).write_text(json.dumps(stamps))


def spawn_publisher(endpoint: str, count: int, rate: float, source: str, prefix: str, folder: str,
                    bind: bool = False) -> tuple[multiprocessing.Process, str]:
    out = str(Path(folder) / f"{prefix}stamps.json")
    proc = multiprocessing.get_context("spawn").Process(
        target=_publish, args=(endpoint, count, rate, source, prefix, out, bind))
    proc.start()
    return proc, out


def bare_sub() -> tuple[zmq.Socket, str]:
    """The transport's side of the ceiling and the latency floor: a bound SUB taking everything."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 2_000_000)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.bind(endpoint)
    return sub, endpoint


def receive_all(sub: zmq.Socket, count: int) -> tuple[int, float]:
    """Take ``count`` events (or until 5 s pass without one), decoding each as the engine would:
    (received, events/s from the first to the last)."""
    received, first, last = 0, 0.0, 0.0
    while received < count and sub.poll(5000):
        _topic, payload = sub.recv_multipart()
        msgpack.unpackb(payload, raw=False)
        received += 1
        last = time.perf_counter()
        first = first or last
    rate = (received - 1) / (last - first) if received > 1 and last > first else 0.0
    return received, rate
