"""``serve --cluster`` timings: change propagation, takeover after ``kill -9`` and after SIGTERM.

Two members on a fresh schema of a PostgreSQL database (``--pg``, default the test database),
no events needed: a rule added through member a is timed until member b has applied it
(``MngGetStats.cluster.changes_applied``, polled every 10 ms), ``--rounds`` times; then b is
stopped with SIGTERM and a is timed until it owns all partitions; then b is started again, the
partitions split, a is killed with ``kill -9`` and b is timed likewise. Prints one JSON line;
never asserts (docs/scaling.md, "serve --cluster", "Measured").

    python scripts/bench_cluster.py [--pg postgresql://postgres@127.0.0.1:5432/test] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokerflow.api.client import ApiClient  # noqa: E402

CLI = [sys.executable, "-m", "brokerflow"]


def endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def until(predicate, timeout_s: float = 60.0, every_s: float = 0.01):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError("condition not met")


class Member:
    def __init__(self, name: str, db: str, token: str, log: Path) -> None:
        self.api = endpoint()
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([*CLI, "serve", "--cluster", "--member", name, "--db", db, "--no-http",
                                          "--events-bind", endpoint(), "--api-bind", self.api, "--pub-bind",
                                          endpoint()], stdout=out, stderr=subprocess.STDOUT)
        self.client = ApiClient(self.api, token, timeout_ms=5000)
        until(lambda: self._stats() is not None, every_s=0.2)

    def _stats(self) -> dict | None:
        try:
            return self.client.call("MngGetStats")["cluster"]
        except TimeoutError:
            return None

    def cluster(self) -> dict:
        return self.client.call("MngGetStats")["cluster"]

    def owned(self) -> int:
        return self.cluster()["partitions_owned"]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)


def fresh_schema(url: str) -> tuple[str, str]:
    import psycopg2

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    conn.close()
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"-csearch_path={schema}"
    return schema, urlunsplit(parts._replace(query=urlencode(query)))


def drop_schema(url: str, schema: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("BROKERFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    schema, db = fresh_schema(args.pg)
    members: list[Member] = []
    result: dict = {}
    try:
        with tempfile.TemporaryDirectory(prefix="brokerflow-cluster-") as folder:
            token = subprocess.run([*CLI, "token", "create", "--role", "SESSION_ADMIN", "--db", db], check=True,
                                   capture_output=True, text=True, timeout=60).stdout.strip()
            a = Member("a", db, token, Path(folder) / "a.log")
            members.append(a)
            until(lambda: a.owned() == 64, every_s=0.1)
            b = Member("b", db, token, Path(folder) / "b.log")
            members.append(b)
            until(lambda: a.owned() == 32 and b.owned() == 32, every_s=0.1)
            delays = []
            for index in range(args.rounds):
                time.sleep(random.uniform(0, 0.5))  # out of step with b's 0.5 s poll, or every round waits it all
                before = b.cluster()["changes_applied"]
                started = time.monotonic()
                a.client.call("MngAddWorkflowRule", {"rule": {"name": f"r{index}", "brand": "alpha",
                                                               "trigger": "deposit.created", "actions": []}})
                until(lambda before=before: b.cluster()["changes_applied"] > before)
                delays.append(time.monotonic() - started)
            result["propagation_ms"] = {"min": round(min(delays) * 1000), "median": round(
                statistics.median(delays) * 1000), "max": round(max(delays) * 1000)}
            started = time.monotonic()
            b.stop(signal.SIGTERM)
            members.remove(b)
            until(lambda: a.owned() == 64, every_s=0.05)
            result["takeover_after_sigterm_s"] = round(time.monotonic() - started, 2)
            b = Member("b", db, token, Path(folder) / "b.log")
            members.append(b)
            until(lambda: a.owned() == 32 and b.owned() == 32, every_s=0.05)
            started = time.monotonic()
            a.stop(signal.SIGKILL)
            members.remove(a)
            until(lambda: b.owned() == 64, every_s=0.05)
            result["takeover_after_kill9_s"] = round(time.monotonic() - started, 2)
    finally:
        for member in members:
            member.stop()
        drop_schema(args.pg, schema)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
