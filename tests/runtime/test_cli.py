"""``brokerflow serve`` as users run it, observed with ``brokerflow stats``, SIGUSR1 and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brokerflow.api.client import ApiClient
from brokerflow.bus.publisher import Publisher
from tests.conftest import tcp_endpoint, wait_until

CLI = [sys.executable, "-m", "brokerflow"]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")


class Served:
    def __init__(self, tmp_path: Path) -> None:
        self.db = f"sqlite:///{tmp_path / 'served.db'}"
        self.events, self.api, self.pub = tcp_endpoint(), tcp_endpoint(), tcp_endpoint()
        self.log_path = tmp_path / "serve.log"
        self.token = run_cli("token", "create", "--role", "SESSION_ADMIN", "--db", self.db).stdout.strip()
        env = {**os.environ, "BROKERFLOW_DB": self.db, "BROKERFLOW_API_BIND": self.api,
               "BROKERFLOW_PUB_BIND": self.pub, "BROKERFLOW_NO_HTTP": "1"}
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([*CLI, "serve", "--events-bind", self.events], env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        self.client = ApiClient(self.api, self.token, timeout_ms=2000)
        wait_until(self._answers, timeout_s=20)

    def _answers(self) -> bool:
        assert self.proc.poll() is None, self.log()
        try:
            return self.client.call("Ping")["pong"] is True
        except TimeoutError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def served(tmp_path):
    server = Served(tmp_path)
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(timeout=5)


def test_stats_prints_a_running_engines_actors_bus_and_runs(served):
    served.client.call("MngUpsertGroup", {"record": {"group": "g", "brand": "alpha", "currency": "USD"}})
    served.client.call("MngUpsertAccount", {"record": {"login": 1, "group": "g"}})
    served.client.call("MngAddWorkflowRule", {"rule": {
        "name": "any deposit", "brand": "alpha", "trigger": "deposit.created", "conditions": [],
        "actions": [{"type": "notify.manager", "params": {"manager_id": 7, "message": "hi"}}]}})
    with Publisher(served.events, source="test", linger_ms=1000) as publisher:
        assert publisher.wait_subscribed(timeout_s=10)
        publisher.publish("trade.push", {"order": 1, "login": 1, "cmd": "OP_BALANCE_IN", "profit": 5.0},
                          event="EV_RECORD_ADD")
    wait_until(lambda: served.client.call("MngGetWorkflowRunLog")["runs"])

    table = run_cli("stats", "--api", served.api, "--token", served.token).stdout
    for name in ("router", "rules:alpha", "notifier", "customer", "kyc", "webhook", "runlog"):
        assert f"\n{name} " in table
    assert "received=1" in table and "logged=1" in table and "success=1" in table
    assert "skipped_no_brand=0" in table and "loops_stopped=0" in table

    body = json.loads(run_cli("stats", "--api", served.api, "--token", served.token, "--json").stdout)
    assert set(body) == {"actors", "bus", "runs", "webhooks", "uptime_s"}
    assert body["runs"] == {"logged": 1, "success": 1, "failed": 0, "skipped": 0, "suppressed": 0}
    assert served.stop() == 0


def test_stats_with_a_bad_token_fails_cleanly(served):
    done = subprocess.run([*CLI, "stats", "--api", served.api, "--token", "nope"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0
    assert "UNAUTHENTICATED" in done.stderr


def test_sigusr1_writes_the_stats_to_the_log(served):
    served.proc.send_signal(signal.SIGUSR1)
    line = wait_until(lambda: next((ln for ln in served.log().splitlines() if " stats: {" in ln), None))
    body = json.loads(line.split(" stats: ", 1)[1])
    assert set(body) == {"actors", "bus", "runs", "webhooks", "uptime_s"}
    assert "router" in {actor["name"] for actor in body["actors"]}
    assert served.proc.poll() is None  # still serving
    assert served.stop() == 0


def test_sigterm_stops_the_engine_with_exit_code_0_within_10_s(served):
    started = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert "engine stopped" in served.log()
