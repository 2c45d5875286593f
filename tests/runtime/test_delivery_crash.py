"""kill -9 of ``brokerflow serve`` mid-stream, the publisher going on: every event runs once.

Real processes all the way: a trading engine's plain PUB (an XPUB here, only so the test sees
the relay subscribe) → ``brokerflow relay`` (journal, stamping, replay endpoint) →
``brokerflow serve --replay`` on SQLite or PostgreSQL. The engine is killed while events flow,
more are published while it is down, and it is started again on the same database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from brokerflow.api.client import ApiClient
from tests.conftest import tcp_endpoint, wait_until
from tests.relayed import RelayedUpstream

CLI = [sys.executable, "-m", "brokerflow"]
EVENTS = 2400
KILL_AFTER_RUNS = 600
pytestmark = pytest.mark.timeout(180)


def run_cli(*args: str) -> str:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Engine:
    def __init__(self, db: str, events: str, replay: str, log_path) -> None:
        self.db, self.events, self.replay, self.log_path = db, events, replay, log_path
        self.api = tcp_endpoint()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.api = tcp_endpoint()
        env = {**os.environ, "BROKERFLOW_NO_HTTP": "1", "BROKERFLOW_PUB_BIND": tcp_endpoint()}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*CLI, "serve", "--db", self.db, "--events-bind", tcp_endpoint(),
                                          "--events-connect", self.events, "--replay", self.replay,
                                          "--api-bind", self.api], env=env, stdout=log, stderr=subprocess.STDOUT)

    def client(self, token: str) -> ApiClient:
        client = ApiClient(self.api, token, timeout_ms=3000)

        def answers() -> bool:
            assert self.proc.poll() is None, self.log_path.read_text(errors="replace")[-3000:]
            try:
                return client.call("Ping")["pong"] is True
            except TimeoutError:
                return False
        wait_until(answers, timeout_s=30)
        return client

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def event_ids(client: ApiClient, rule_id: int) -> Counter:
    found: Counter = Counter()
    before = None
    while True:
        params = {"rule_id": rule_id, "limit": 1000, **({"before_id": before} if before else {})}
        runs = client.call("MngGetWorkflowRunLog", params)["runs"]
        found.update(run["event_id"] for run in runs)
        if len(runs) < 1000:
            return found
        before = runs[-1]["id"]


def test_kill_9_mid_stream_with_the_publisher_going_on_loses_nothing_and_doubles_nothing(db_url, tmp_path):
    relayed = RelayedUpstream(str(tmp_path / "journal.db"), sndhwm=100_000)
    token = run_cli("token", "create", "--role", "SESSION_ADMIN", "--db", db_url)
    engine = Engine(db_url, relayed.publish_endpoint, relayed.replay_endpoint, tmp_path / "serve.log")
    try:
        relayed.wait_subscribed()
        engine.start()
        client = engine.client(token)
        client.call("MngUpsertGroup", {"record": {"group": "g", "brand": "alpha", "currency": "USD"}})
        client.call("MngUpsertAccount", {"record": {"login": 1, "group": "g"}})
        rule = client.call("MngAddWorkflowRule", {"rule": {
            "name": "every deposit", "brand": "alpha", "trigger": "deposit.created",
            "actions": [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}]}})["rule"]

        killed = False
        for order in range(1, EVENTS + 1):
            relayed.deposit(order, login=1)
            time.sleep(0.001)  # a steady 1,000 events/s or less, as a trading engine publishes
            if not killed and order % 100 == 0 and sum(event_ids(client, rule["id"]).values()) >= KILL_AFTER_RUNS:
                engine.kill()
                client.close()
                killed = True
        assert killed, "the engine was never killed mid-stream"
        engine.start()
        client = engine.client(token)
        wait_until(lambda: sum(event_ids(client, rule["id"]).values()) >= EVENTS, timeout_s=90, interval_s=0.5)
        counts = event_ids(client, rule["id"])
        assert set(counts) == {f"mt5:{seq}" for seq in range(1, EVENTS + 1)}
        assert set(counts.values()) == {1}
        assert client.call("MngGetStats")["bus"]["replayed"] > 0
        client.close()
    finally:
        engine.stop()
        relayed.close()
