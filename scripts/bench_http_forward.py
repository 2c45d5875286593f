"""What the HTTP gateway's forwarding to another shard costs a Workflow Machine command.

``serve --shards 2 --http`` on a fresh SQLite file; one counter process on shard 0 (served by the
gateway's own engine) and one on shard 1 (carried to shard 1's API, ``api/forwarding.py``). Each
round sends ``--count`` ``AVAILABLE_EVENTS`` (a read) and then ``--count`` ``EVENT step`` (a write)
over one keep-alive HTTP connection to each process in turn, interleaved (fresh processes each
round), and times each request on the client. Prints one JSON line per round and a summary of
medians and p95s (ms); never asserts (docs/scaling.md, "HTTP gateway and SMTP listener").

    python scripts/bench_http_forward.py [--rounds 5] [--count 200]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokerflow.api.client import ApiClient  # noqa: E402
from brokerflow.workflow.partitions import partition_of, pid_key, shard_of  # noqa: E402

CLI = [sys.executable, "-m", "brokerflow"]
FLOW = {"name": "counter", "initial": "counting", "states": {
    "counting": {"on": {"step": "counting", "stop": "stopped"}}, "stopped": {"final": True}}}


def port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(predicate, timeout_s: float = 60.0, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - not up yet
            value = None
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError("condition not met")


def timed(session: requests.Session, url: str, token: str, count: int, **params: str) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        reply = session.post(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        out.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200:
            raise RuntimeError(reply.text)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bf-httpfwd-"))
    db = f"sqlite:///{work / 'bench.db'}"
    token = subprocess.run([*CLI, "token", "create", "--role", "SESSION_ADMIN", "--db", db], capture_output=True,
                           text=True, check=True).stdout.strip()
    api, http = f"tcp://127.0.0.1:{port()}", port()
    with open(work / "serve.log", "ab") as log:
        proc = subprocess.Popen([*CLI, "serve", "--shards", "2", "--db", db, "--api-bind", api,
                                 "--events-bind", f"tcp://127.0.0.1:{port()}", "--pub-bind", f"tcp://127.0.0.1:{port()}",
                                 "--http", f"127.0.0.1:{http}"], stdout=log, stderr=subprocess.STDOUT)
    client = ApiClient(api, token, timeout_ms=5000)
    try:
        until(lambda: len(client.call("MngGetStats").get("shards", ())) == 2)
        client.call("MngAddFlow", {"flow": FLOW})

        def started_on(shard: int) -> str | None:
            pid = client.call("START", {"name": "counter"})["pid"]
            return pid if shard_of(partition_of(pid_key(pid), 64), 2) == shard else None
        url = f"http://127.0.0.1:{http}/workflow"
        session = requests.Session()
        until(lambda: session.get(f"http://127.0.0.1:{http}/health", timeout=5).ok)
        figures: dict[str, list[float]] = {}
        for round_no in range(args.rounds):
            # Fresh processes each round: every EVENT adds a history step, and a longer history costs more.
            pids = {"local": until(lambda: started_on(0)), "forwarded": until(lambda: started_on(1))}
            for pid in pids.values():
                timed(session, url, token, 20, cmd="AVAILABLE_EVENTS", pid=pid)  # warm-up
            line = {"round": round_no + 1}
            for cmd, extra in (("AVAILABLE_EVENTS", {}), ("EVENT", {"name": "step"})):
                for where in ("local", "forwarded") if round_no % 2 == 0 else ("forwarded", "local"):
                    times = timed(session, url, token, args.count, cmd=cmd, pid=pids[where], **extra)
                    key = f"{cmd}/{where}"
                    line[key] = {"median_ms": round(statistics.median(times), 2), "p95_ms": round(p95(times), 2)}
                    figures.setdefault(key, []).append(statistics.median(times))
            print(json.dumps(line), flush=True)
        print(json.dumps({"summary_median_ms_range": {key: [round(min(v), 2), round(max(v), 2)]
                                                      for key, v in figures.items()}}))
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        if os.environ.get("KEEP") is None:
            for path in sorted(work.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            work.rmdir()


if __name__ == "__main__":
    main()
