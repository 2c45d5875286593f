"""A trading engine's plain PUB behind a real ``brokerflow relay`` process, for crash tests.

The upstream is an XPUB only so a test can see the relay subscribe before it publishes; the
relay journals, stamps ``source``/``seq`` and serves replay, as in production.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import msgpack
import zmq

from tests.conftest import tcp_endpoint

CLI = [sys.executable, "-m", "brokerflow"]


class RelayedUpstream:
    def __init__(self, journal: str, source: str = "mt5", sndhwm: int | None = None) -> None:
        self.context = zmq.Context()
        self.upstream = self.context.socket(zmq.XPUB)
        self.upstream.setsockopt(zmq.LINGER, 0)
        if sndhwm is not None:
            self.upstream.setsockopt(zmq.SNDHWM, sndhwm)
        # The upstream dials the relay (``--from-bind``): with the relay dialling a binding publisher
        # (``--from``) a burst is sometimes cut short (docs/delivery.md, "Measured").
        self.publish_endpoint, self.replay_endpoint, relay_in = tcp_endpoint(), tcp_endpoint(), tcp_endpoint()
        self.relay = subprocess.Popen(
            [*CLI, "relay", "--from-bind", relay_in,
             "--publish-bind", self.publish_endpoint, "--replay-bind", self.replay_endpoint,
             "--journal", journal, "--source", source], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.upstream.connect(relay_in)

    def wait_subscribed(self, timeout_ms: int = 20_000) -> None:
        assert self.upstream.poll(timeout_ms), "the relay never subscribed"
        self.upstream.recv()

    def deposit(self, order: int, login: int) -> None:
        """One deposit without source or seq, as a trading engine sends it (the relay stamps them)."""
        self.upstream.send_multipart([b"trade.push", msgpack.packb({"event": "EV_RECORD_ADD", "record": {
            "order": order, "login": login, "cmd": "OP_BALANCE_IN", "profit": 1.0}})])

    def close(self) -> None:
        self.relay.send_signal(signal.SIGTERM)
        self.relay.wait(timeout=15)
        self.upstream.close(linger=0)
        self.context.term()


def stop_serve(proc: subprocess.Popen, client: object) -> int:
    """SIGTERM a ``serve`` subprocess and wait for its exit code; a stop that hangs is killed and
    raised (the engine must stop within the protocol's 10 s)."""
    client.close()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=12)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            raise
    return proc.returncode
