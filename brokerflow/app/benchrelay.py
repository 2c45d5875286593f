"""The relay's share of ``brokerflow bench``: publisher → ``brokerflow relay`` → bare SUB.

The same publisher process and event mix as the ceiling (``bench.measure_ceiling``), sent to a
real ``brokerflow relay`` subprocess on a fresh journal, which commits each burst and then
publishes to a bare SUB that decodes every event, as the ceiling's does. Two runs:

- ``passthrough``: the events carry ``source``/``seq`` (the publisher library's), so the relay
  checks and journals them and sends the bytes on unchanged;
- ``stamping``: the same events without ``source``/``seq`` (a trading engine's plain PUB), so the
  relay stamps and re-encodes every one — its worst case and the one it exists for.

Events/s is taken at the SUB from the first event to the last, like the ceiling.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from brokerflow.app import benchdata
from brokerflow.app.benchwire import bare_sub as _bare_sub
from brokerflow.app.benchwire import free_port as _port
from brokerflow.app.benchwire import receive_all
from brokerflow.app.benchwire import spawn_publisher as _spawn_publisher

__all__ = ["measure_relay", "start_relay", "stop_relay"]

PROBE_SOURCE = "bench-probe"


def _publish_plain(endpoint: str, count: int, prefix: str) -> None:
    """Runs in a child process: the ceiling's events as a plain PUB sends them (no source/seq)."""
    from brokerflow.bus.publisher import Publisher

    stream = benchdata.events(count, seed=hash(prefix) & 0xFFFF)
    pack = msgpack.Packer(use_bin_type=True).pack
    with Publisher(endpoint, source="unused") as publisher:
        publisher.wait_subscribed(timeout_s=10)
        for index, (topic, record, event) in enumerate(stream):
            payload = {"record": dict(record), "ts": int(time.time() * 1000), "event": event, "id": f"{prefix}{index}"}
            publisher.publish_raw([topic.encode("utf-8"), pack(payload)])
        time.sleep(0.5)  # let the last frames leave before the socket closes


def start_relay(folder: str, name: str, upstream: list[str], downstream: list[str],
                source: str | None = None) -> tuple[subprocess.Popen, str]:
    """A ``brokerflow relay`` subprocess on a fresh journal ``<name>.db``; returns it and its replay endpoint.

    ``upstream``/``downstream`` are its ``--from``/``--from-bind`` and ``--publish-*`` options.
    """
    replay = f"tcp://127.0.0.1:{_port()}"
    log = open(Path(folder) / f"relay-{name}.log", "a")  # noqa: SIM115 - the process writes it until it ends
    proc = subprocess.Popen(
        [sys.executable, "-m", "brokerflow", "--log-level", "WARNING", "relay", *upstream, *downstream,
         "--replay-bind", replay, "--journal", str(Path(folder) / f"{name}.db"),
         *(["--source", source] if source else [])], stdout=log, stderr=log)
    log.close()
    return proc, replay


def stop_relay(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return -9


def _start_relay(folder: str, name: str, sub_endpoint: str) -> tuple[subprocess.Popen, str, str]:
    from_endpoint = f"tcp://127.0.0.1:{_port()}"
    proc, replay = start_relay(folder, name, ["--from-bind", from_endpoint], ["--publish-connect", sub_endpoint],
                               source=f"bench-{name}")
    return proc, from_endpoint, replay


def _wait_path(from_endpoint: str, sub: zmq.Socket, timeout_s: float = 30) -> None:
    """Probe events until one went publisher → relay → SUB: the whole path is subscribed."""
    from brokerflow.bus.publisher import Publisher

    deadline = time.monotonic() + timeout_s
    with Publisher(from_endpoint, source=PROBE_SOURCE, linger_ms=0) as probe:
        probe.wait_subscribed(timeout_s=timeout_s)
        while time.monotonic() < deadline:
            probe.publish("rate.push", {"currency": "EUR", "usd": 1.0})
            if sub.poll(50):
                break
        else:
            raise RuntimeError("the relay did not pass a probe event within the timeout")
    while sub.poll(300):  # probes still under way
        sub.recv_multipart()


def measure_relay(count: int, folder: str, stamping: bool) -> dict[str, Any]:
    name = "stamping" if stamping else "passthrough"
    sub, sub_endpoint = _bare_sub()
    proc, from_endpoint, _replay = _start_relay(folder, name, sub_endpoint)
    try:
        _wait_path(from_endpoint, sub)
        if stamping:
            publisher = multiprocessing.get_context("spawn").Process(
                target=_publish_plain, args=(from_endpoint, count, f"p{name}"))
            publisher.start()
        else:
            publisher, _ = _spawn_publisher(from_endpoint, count, 0, f"relay-{name}", "r", folder)
        received, rate = receive_all(sub, count)
        publisher.join(60)
    finally:
        code = stop_relay(proc)
        sub.close(linger=0)
    return {"mode": name, "events": count, "received": received, "lost": count - received,
            "events_per_s": round(rate), "stop_exit_code": code}
