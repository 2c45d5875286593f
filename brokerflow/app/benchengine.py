"""The engine under benchmark: a real ``brokerflow serve`` process, its world, its max rate.

Shared by ``bench`` and the delivery figures (``benchreplay``, ``benchcrash``), which start it
behind a relay, with ``--replay``, and kill and restart it; kept apart from ``bench`` so those
modules and ``bench`` (which runs them) do not import each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from brokerflow.api.client import ApiClient
from brokerflow.app import benchdata
from brokerflow.app.benchprogress import Progress, Silent
from brokerflow.app.benchwire import free_port as _port
from brokerflow.app.benchwire import spawn_publisher as _spawn_publisher
from brokerflow.workflow.isotime import parse_iso_ms

__all__ = ["BASE_CMD", "EngineUnderTest", "last_run_id", "load_world", "measure_max_rate", "webhook_figures"]


BASE_CMD = [sys.executable, "-m", "brokerflow"]


class EngineUnderTest:
    """A real ``brokerflow serve`` subprocess on a fresh database (SQLite by default) and free ports."""

    def __init__(self, folder: str, name: str = "bench", *, events_connect: str | None = None,
                 replay: str | None = None, publish_to: str | None = None, retention_hours: float | None = None,
                 shards: int = 1, db: str | None = None) -> None:
        """``events_connect``/``replay``: the engine takes its events from a relay's PUB and asks its
        replay endpoint (``serve --replay``); ``publish_to`` is then where publishers send (the
        relay's upstream side) instead of the engine's own ``--events-bind``. ``shards``: ``serve
        --shards N``; ``retention_hours``: ``--event-retention-hours``; ``db``: its database (a fresh
        SQLite file in ``folder`` by default; ``benchdb.BenchDatabases`` makes PostgreSQL ones)."""
        self.folder, self.name, self.shards = folder, name, shards
        self.db = db or f"sqlite:///{Path(folder) / f'{name}.db'}"
        self.events = f"tcp://127.0.0.1:{_port()}"
        self.publish_to = publish_to or self.events
        self.extra = (["--events-connect", events_connect] if events_connect else []) + (
            ["--replay", replay] if replay else []) + ["--shards", str(shards)] + (
            [] if retention_hours is None else ["--event-retention-hours", str(retention_hours)])
        self.token = subprocess.run(BASE_CMD + ["token", "create", "--role", "SESSION_ADMIN", "--db", self.db],
                                    check=True, capture_output=True, text=True).stdout.strip()
        self.start()

    def start(self) -> None:
        """Start ``serve`` (again, on the same database after a ``kill``) and wait for Ping."""
        self.api = f"tcp://127.0.0.1:{_port()}"
        self.log = open(Path(self.folder) / f"{self.name}-serve.log", "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            BASE_CMD + ["--log-level", "WARNING", "serve", "--db", self.db, "--events-bind", self.events,
                        "--api-bind", self.api, "--pub-bind", f"tcp://127.0.0.1:{_port()}", "--no-http",
                        "--webhook-allow", "127.0.0.0/8", *self.extra], stdout=self.log, stderr=self.log)
        self.client = ApiClient(self.api, self.token, timeout_ms=30_000)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                ApiClient(self.api, timeout_ms=500).call("Ping")
                if self.shards == 1 or len(self.stats().get("shards", ())) == self.shards:
                    return
            except TimeoutError:
                if self.proc.poll() is not None:
                    break
        raise RuntimeError(f"the engine did not answer Ping within 30 s (see {self.log.name})")

    def kill(self) -> None:
        """``kill -9``: no clean stop, nothing flushed."""
        self.client.close()
        self.proc.kill()
        self.proc.wait(15)
        self.log.close()

    def stats(self) -> dict[str, Any]:
        return self.client.call("MngGetStats")

    def wait_idle(self, received_before: int, new_events: int, timeout_s: float = 240) -> dict[str, Any]:
        """Until the ``new_events`` published after ``received_before`` (``bus.received`` then) are
        done. Every shard decodes every event (``received`` counts each once per shard), and a
        shard's figures are up to a second old: with shards, quiet means 3 s without a new run (a
        loaded machine can stall one shard's writes for over a second)."""
        expect_received = received_before + new_events * self.shards
        needed = 3 if self.shards == 1 else 30
        deadline, quiet, last_logged = time.monotonic() + timeout_s, 0, -1
        while time.monotonic() < deadline:
            stats = self.stats()
            busy = any(a["mailbox"] or a.get("pending") for a in stats["actors"])
            logged, bus = stats["runs"]["logged"], stats["bus"]
            # With --replay, events dropped live come back as ``replayed``; an open gap is work left.
            taken = bus["received"] + bus.get("replayed", 0)
            done = taken >= expect_received and not bus.get("gaps_open") and not busy and logged == last_logged
            quiet = quiet + 1 if done else 0
            if quiet >= needed:
                return stats
            last_logged = logged
            time.sleep(0.1)
        return self.stats()

    def runs_since(self, min_id: int) -> list[dict[str, Any]]:
        runs, before = [], None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if before is not None:
                params["before_id"] = before
            page = self.client.call("MngGetWorkflowRunLog", params)["runs"]
            fresh = [run for run in page if run["id"] > min_id]
            runs.extend(fresh)
            if len(fresh) < len(page) or not page:
                return runs
            before = page[-1]["id"]

    def _status_mb(self, field: str) -> float:
        """A memory figure of the serve process from /proc (0.0 where there is none)."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return 0.0

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the serve process used so far, from /proc (0.0 where there is none).

        On a machine shared with other work this moves far less than events/s, so a cost shows in it
        even when the throughput's spread hides it.
        """
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

    def peak_rss_mb(self) -> float:
        return self._status_mb("VmHWM")

    def rss_mb(self) -> float:
        return self._status_mb("VmRSS")

    def stop(self) -> int:
        self.client.close()
        self.proc.terminate()
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = -9
        self.log.close()
        return code


def load_world(engine: EngineUnderTest, webhook_url: str) -> int:
    for kind, records in benchdata.reference(webhook_url).items():
        for record in records:
            engine.client.call(f"MngUpsert{kind}", {"record": record})
    rules = benchdata.rules(webhook_url)
    for rule in rules:
        engine.client.call("MngAddWorkflowRule", {"rule": rule})
    return len(rules)


def last_run_id(engine: EngineUnderTest) -> int:
    runs = engine.client.call("MngGetWorkflowRunLog", {"limit": 1})["runs"]
    return runs[0]["id"] if runs else 0


def follow(engine: EngineUnderTest, proc: Any, received_before: int, count: int, progress: Progress) -> None:
    """Wait for the publisher process, telling how many of its events the engine received so far
    (under ``--shards`` every shard receives every event: the count is per shard)."""
    deadline = time.monotonic() + 600
    while proc.is_alive() and time.monotonic() < deadline:
        proc.join(1.0)
        received = (engine.stats()["bus"]["received"] - received_before) // engine.shards
        progress.tick(received, count, "events received")


def measure_max_rate(engine: EngineUnderTest, count: int, folder: str,
                     progress: Progress | None = None) -> dict[str, Any]:
    progress = progress or Silent(0)
    before = engine.stats()
    first_id = last_run_id(engine)
    proc, stamps_path = _spawn_publisher(engine.publish_to, count, 0, "bench-max", "m", folder)
    follow(engine, proc, before["bus"]["received"], count, progress)
    stats = engine.wait_idle(before["bus"]["received"], count)
    stamps = json.loads(Path(stamps_path).read_text())
    runs = engine.runs_since(first_id)
    first_ts = min(stamps.values())
    last_finished = max((parse_iso_ms(run["finished_at"]) for run in runs), default=first_ts)
    elapsed_s = max(0.001, (last_finished - first_ts) / 1000)
    received = (stats["bus"]["received"] - before["bus"]["received"]) // engine.shards
    return {"events": count, "received": received, "lost": count - received, "runs": len(runs),
            "runs_per_event": round(len(runs) / max(1, count), 2),
            "failed_runs": sum(1 for run in runs if run["status"] == "failed"),
            "events_per_s": round(count / elapsed_s), "elapsed_s": round(elapsed_s, 2),
            "webhooks": webhook_figures(runs, before, stats)}


def webhook_figures(runs: list[dict[str, Any]], before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The max-rate run's webhooks: how many, how many delivered, their request time (the
    action's ``ms``: connect, send, whole reply), and the attempts the engine counted."""
    hooks = [action for run in runs for action in run["actions"] if action.get("type") == "webhook.send"]
    ms = [float(action.get("ms") or 0.0) for action in hooks]
    figures: dict[str, Any] = {"sent": len(hooks), "success": sum(1 for a in hooks if a.get("status") == "success"),
                               "p50_ms": round(percentile(ms, 0.5), 2), "p99_ms": round(percentile(ms, 0.99), 2)}
    if "webhooks" in after and "webhooks" in before:  # engines from before webhook retries have no such figures
        figures["attempts"] = after["webhooks"]["attempts"] - before["webhooks"]["attempts"]
    return figures


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
