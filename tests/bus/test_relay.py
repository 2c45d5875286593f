"""``brokerflow relay`` as a real process: plain PUB upstream → relay → SUB reader, journal, replay, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import msgpack
import pytest
import zmq

from tests.conftest import tcp_endpoint, wait_until

PROBE = "probe"  # events the tests send to learn that a path is subscribed; they carry their own seqs


class Relay:
    """A ``python -m brokerflow relay`` process on fresh loopback ports."""

    def __init__(self, journal: str, upstream: str, *extra: str) -> None:
        self.publish, self.replay = tcp_endpoint(), tcp_endpoint()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "brokerflow", "relay", "--from", upstream, "--publish-bind", self.publish,
             "--replay-bind", self.replay, "--journal", journal, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        _out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, err


def ask(context: zmq.Context, endpoint: str, request: dict, timeout_ms: int = 300) -> dict | None:
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(msgpack.packb(request))
        if not sock.poll(timeout_ms):
            return None
        return msgpack.unpackb(sock.recv(), raw=False)
    finally:
        sock.close()


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def upstream(context):
    """A trading engine's plain PUB, bound; an XPUB only so the test can see the relay subscribe."""
    sock = context.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 1_000_000)
    endpoint = tcp_endpoint()
    sock.bind(endpoint)
    return sock, endpoint


def reader(context: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1_000_000)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    return sock


def connect_path(context, upstream_sock, relay: Relay) -> zmq.Socket:
    """Wait until the relay runs, has subscribed upstream and the reader is subscribed to it."""
    wait_until(lambda: upstream_sock.poll(100) and upstream_sock.recv(), timeout_s=20)
    sub = reader(context, relay.publish)
    probe_seq = [0]

    def probe_arrived() -> bool:
        probe_seq[0] += 1
        upstream_sock.send_multipart([b"trade.push", msgpack.packb({"source": PROBE, "seq": probe_seq[0]})])
        return bool(sub.poll(50))

    wait_until(probe_arrived, timeout_s=20)
    while sub.poll(200):  # the probes still on their way
        sub.recv_multipart()
    return sub


def receive(sub: zmq.Socket, count: int) -> list[dict]:
    got: list[dict] = []
    while len(got) < count and sub.poll(5000):
        payload = msgpack.unpackb(sub.recv_multipart()[1], raw=False)
        if payload.get("source") != PROBE:
            got.append(payload)
    return got


def plain(upstream_sock: zmq.Socket, first: int, last: int) -> None:
    for n in range(first, last + 1):
        upstream_sock.send_multipart([b"trade.push", msgpack.packb(
            {"event": "EV_RECORD_ADD", "id": f"e{n}", "record": {"order": n, "login": 1, "cmd": "OP_BUY"}})])


def replay_all(context: zmq.Context, endpoint: str, source: str) -> list[dict]:
    events, next_seq = [], 0
    while next_seq is not None:
        reply = ask(context, endpoint, {"cmd": "REPLAY", "source": source, "from_seq": next_seq, "max": 700}, 5000)
        events += [msgpack.unpackb(payload, raw=False) for _topic, payload in reply["events"]]
        next_seq = reply["next_seq"]
    return events


def test_the_relay_stamps_journals_and_republishes_and_a_kill_9_restart_continues_the_seqs(tmp_path, context,
                                                                                         upstream):
    up, up_endpoint = upstream
    journal = str(tmp_path / "relay.db")
    relay = Relay(journal, up_endpoint, "--source", "mt5")
    sub = connect_path(context, up, relay)
    plain(up, 1, 500)
    first = receive(sub, 500)
    assert [(e["source"], e["seq"], e["id"]) for e in first] == [("mt5", n, f"e{n}") for n in range(1, 501)]
    code, _ = relay.stop(signal.SIGKILL)
    assert code == -9
    sub.close()

    relay = Relay(journal, up_endpoint, "--source", "mt5")
    try:
        sub = connect_path(context, up, relay)
        plain(up, 501, 800)
        second = receive(sub, 300)
        assert [(e["seq"], e["id"]) for e in second] == [(n, f"e{n}") for n in range(501, 801)]
        sources = ask(context, relay.replay, {"cmd": "SOURCES"}, 5000)["sources"]
        assert sources["mt5"] == {"first_seq": 1, "last_seq": 800}
        assert [(e["seq"], e["id"]) for e in replay_all(context, relay.replay, "mt5")] == [
            (n, f"e{n}") for n in range(1, 801)]
    finally:
        code, err = relay.stop()
    assert code == 0, err
    assert "relay: from" in err and relay.replay.split(":")[-1] in err


def test_events_that_carry_source_and_seq_pass_unchanged_and_garbage_costs_only_itself(tmp_path, context, upstream):
    up, up_endpoint = upstream
    relay = Relay(str(tmp_path / "relay.db"), up_endpoint)  # no --source: nothing to stamp
    try:
        sub = connect_path(context, up, relay)
        kept = msgpack.packb({"source": "bo", "seq": 5, "ts": 1, "record": {"id": 1}})
        up.send_multipart([b"customer.push", b"\xc1garbage"])
        up.send_multipart([b"customer.push", msgpack.packb({"record": {}})])  # no source, no --source
        up.send_multipart([b"a", b"b", b"c"])
        up.send_multipart([b"customer.push", kept])
        assert sub.poll(5000)
        assert sub.recv_multipart() == [b"customer.push", kept]
        reply = ask(context, relay.replay, {"cmd": "REPLAY", "source": "bo", "from_seq": 1}, 5000)
        assert reply["events"] == [[b"customer.push", kept]] and reply["next_seq"] is None
    finally:
        code, err = relay.stop(signal.SIGINT)
    assert code == 0
    assert "malformed" in err and "without a source" in err and "garbage" not in err


@pytest.mark.parametrize(("args", "said"), [
    (["--publish-bind", "tcp://127.0.0.1:0"], ["--journal", "--from"]),
    (["--from", "tcp://127.0.0.1:1", "--publish-bind", "not-an-endpoint", "--journal", "{tmp}/j.db"], ["sockets"]),
    (["--from", "tcp://127.0.0.1:1", "--publish-bind", "tcp://127.0.0.1:0", "--journal", "{tmp}/no/dir/j.db"],
     ["journal"]),
])
def test_the_relay_refuses_to_start_with_a_line_saying_why(tmp_path, args, said):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = subprocess.run([sys.executable, "-m", "brokerflow", "relay", *argv],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert all(word in result.stderr for word in said) and "Traceback" not in result.stderr


def test_options_can_come_from_brokerflow_relay_variables(tmp_path):
    from brokerflow.app.cli import build_parser
    from brokerflow.app.relaycli import relay_settings

    args = build_parser().parse_args(["relay", "--from", "tcp://127.0.0.1:1"])
    settings = relay_settings(args, {"BROKERFLOW_RELAY_FROM": "tcp://127.0.0.1:9", "BROKERFLOW_RELAY_JOURNAL": "j.db",
                                     "BROKERFLOW_RELAY_PUBLISH_BIND": "tcp://127.0.0.1:2, tcp://127.0.0.1:3",
                                     "BROKERFLOW_RELAY_RETAIN_HOURS": "1.5", "BROKERFLOW_RELAY_SOURCE": "mt5"})
    assert settings.from_connect == ("tcp://127.0.0.1:1",)  # the flag wins
    assert settings.publish_bind == ("tcp://127.0.0.1:2", "tcp://127.0.0.1:3")
    assert (settings.journal, settings.source, settings.retain_hours, settings.retain_events) == (
        "j.db", "mt5", 1.5, 10_000_000)
    from brokerflow.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="retain-events"):
        relay_settings(args, {"BROKERFLOW_RELAY_JOURNAL": "j.db", "BROKERFLOW_RELAY_PUBLISH_BIND": "tcp://x:1",
                              "BROKERFLOW_RELAY_RETAIN_EVENTS": "0"})


def test_the_relay_trims_its_journal_by_age_when_it_starts(tmp_path, context, upstream):
    from brokerflow.bus.journal import Journal

    journal_path = str(tmp_path / "relay.db")
    journal = Journal(journal_path)
    journal.append([("mt5", seq, b"trade.push", b"\x80") for seq in range(1, 1001)], at_ms=1)
    journal.append([("old", 1, b"trade.push", b"\x80"), ("old", 2, b"trade.push", b"\x80")], at_ms=1)
    journal.close()
    relay = Relay(journal_path, upstream[1], "--retain-hours", "1")  # at_ms=1: long past
    try:
        def trimmed() -> dict | None:
            reply = ask(context, relay.replay, {"cmd": "SOURCES"})
            return reply if reply and reply["sources"]["mt5"]["first_seq"] == 1000 else None

        assert wait_until(trimmed, timeout_s=20)["sources"] == {"mt5": {"first_seq": 1000, "last_seq": 1000},
                                      "old": {"first_seq": 2, "last_seq": 2}}  # a source's newest event stays
    finally:
        assert relay.stop()[0] == 0


def test_a_burst_the_journal_refuses_is_held_unpublished_and_sent_once_the_journal_takes_it(tmp_path, context,
                                                                                           upstream):
    import sqlite3

    from brokerflow.bus.relay import Relay as InProcessRelay
    from brokerflow.bus.relay import RelaySettings

    up, up_endpoint = upstream
    journal = str(tmp_path / "relay.db")
    relay = InProcessRelay(RelaySettings(journal=journal, from_connect=(up_endpoint,), source="mt5",
                                         publish_bind=("tcp://127.0.0.1:0",), journal_busy_ms=20), context)
    try:
        sub = reader(context, relay.publish_endpoints[0])
        wait_until(lambda: up.poll(10) and up.recv())  # the relay subscribed upstream

        def probe_arrived() -> bool:
            up.send_multipart([b"rate.push", msgpack.packb({"source": PROBE, "seq": 1})])
            relay.poll_once(10)
            return bool(sub.poll(10))

        wait_until(probe_arrived)
        while sub.poll(50):
            sub.recv_multipart()
        blocker = sqlite3.connect(journal, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the journal's write lock
        plain(up, 1, 3)
        wait_until(lambda: relay.poll_once(10) or relay.stats()["journal_failures"])
        for _ in range(3):
            relay.poll_once(10)
        assert not sub.poll(100), "published before it was committed"
        assert relay.stats()["journal_failures"] >= 2
        blocker.execute("COMMIT")
        blocker.close()
        wait_until(lambda: relay.poll_once(10) or relay.stats()["journaled"] >= 4)
        assert [(e["source"], e["seq"]) for e in receive(sub, 3)] == [("mt5", 1), ("mt5", 2), ("mt5", 3)]
    finally:
        relay.close()
