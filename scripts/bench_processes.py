"""Workflow Machine benchmark: EVENT commands/s over REQ/REP with 1 and 8 concurrent clients.

A real ``brokerflow serve`` subprocess on a fresh SQLite file and free ports (``EngineUnderTest``
of ``brokerflow.bench``). One flow whose ``tick`` is a self-loop, so every EVENT is a full step:
load or find the process, run the machine, persist the state (its whole history), reply.

Each client is its own OS process with its own REQ socket (so the clients' Python does not
share one GIL) and its own set of pids, sending EVENTs round-robin over them, one at a time
(REQ waits for each reply). Histories stay short (``--events / --pids`` steps per pid) because
every step persists the whole state. A short warm-up per client is not counted.

Beside EVENT/s it reports the engine's CPU time per EVENT over the timed phase (from /proc, so
Linux only): on a machine shared with other work, or with the clients on the same cores, that
figure moves far less than EVENT/s and shows whether a change made the engine cheaper.

Prints a table and one JSON line; never asserts.

    python scripts/bench_processes.py [--events 3000] [--pids 100] [--clients 1,8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokerflow.api.client import ApiClient  # noqa: E402
from brokerflow.app.bench import EngineUnderTest  # noqa: E402

FLOW = {"name": "bench_counter", "initial": "work",
        "states": {"work": {"on": {"tick": "work", "finish": "done"}}, "done": {"final": True}}}
WARMUP_EVENTS = 50


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_client(endpoint: str, token: str, pids: list[str], events: int, start_at: float) -> dict[str, Any]:
    """One client process: warm up, wait for the common start, then ``events`` timed EVENTs."""
    latencies: list[float] = []
    errors = 0
    with ApiClient(endpoint, token, timeout_ms=30_000) as client:
        for index in range(WARMUP_EVENTS):
            client.call("EVENT", {"pid": pids[index % len(pids)], "name": "tick"})
        time.sleep(max(0.0, start_at - time.time()))  # the clients start together
        began = time.perf_counter()
        for index in range(events):
            sent = time.perf_counter()
            reply = client.request("EVENT", {"pid": pids[index % len(pids)], "name": "tick",
                                             "input": {"value": index}})
            latencies.append((time.perf_counter() - sent) * 1000.0)
            errors += not reply.get("success")
        ended = time.perf_counter()
    return {"latencies": latencies, "errors": errors, "began": began, "ended": ended}


def start_pids(client: ApiClient, count: int) -> tuple[list[str], float]:
    began = time.perf_counter()
    pids = [client.call("START", {"name": FLOW["name"]})["pid"] for _ in range(count)]
    return pids, count / max(1e-9, time.perf_counter() - began)


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks of a process so far (0 where /proc has none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


class CpuSampler:
    """Samples a process's CPU ticks every ``interval_s`` so a window can be cut out afterwards."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append((time.perf_counter(), cpu_ticks(self.pid)))
            if self._stop.wait(self.interval_s):
                return

    def seconds_between(self, began: float, ended: float) -> float:
        """CPU seconds spent from the last sample at or before ``began`` to the first at or after ``ended``."""
        before = [ticks for at, ticks in self.samples if at <= began] or [self.samples[0][1]]
        after = [ticks for at, ticks in self.samples if at >= ended] or [self.samples[-1][1]]
        return (after[0] - before[-1]) / os.sysconf("SC_CLK_TCK")


def measure(engine: EngineUnderTest, clients: int, events: int, pids_per_client: int) -> dict[str, Any]:
    """``clients`` concurrent clients, each ``events`` EVENTs over its own ``pids_per_client`` pids."""
    pid_sets, start_rates = [], []
    for _ in range(clients):
        pids, rate = start_pids(engine.client, pids_per_client)
        pid_sets.append(pids)
        start_rates.append(rate)
    start_at = time.time() + 1.0 + 0.2 * clients
    with CpuSampler(engine.proc.pid) as cpu, multiprocessing.get_context("spawn").Pool(clients) as pool:
        results = pool.starmap(run_client, [(engine.api, engine.token, pid_sets[i], events, start_at)
                                            for i in range(clients)])
    began, ended = min(r["began"] for r in results), max(r["ended"] for r in results)
    latencies = [ms for result in results for ms in result["latencies"]]
    wall_s = ended - began  # perf_counter is CLOCK_MONOTONIC, one clock for every process
    slowest_s = max(r["ended"] - r["began"] for r in results)
    commands = len(latencies)
    return {"clients": clients, "commands": commands, "errors": sum(r["errors"] for r in results),
            "per_s": round(commands / max(1e-9, slowest_s)), "seconds": round(slowest_s, 2),
            "wall_s": round(wall_s, 2), "p50_ms": round(percentile(latencies, 0.5), 3),
            "p99_ms": round(percentile(latencies, 0.99), 3), "max_ms": round(max(latencies, default=0), 3),
            "engine_cpu_us_per_event": round(cpu.seconds_between(began, ended) * 1e6 / max(1, commands)),
            "steps_per_pid": (events + WARMUP_EVENTS) // pids_per_client + 1,
            "start_per_s": round(sum(start_rates) / len(start_rates))}


def engine_threads(engine: EngineUnderTest) -> int:
    try:
        for line in Path(f"/proc/{engine.proc.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_gauges(engine: EngineUnderTest) -> dict[str, int]:
    workers = [a for a in engine.stats()["actors"] if a["kind"] == "process"]
    return {key: sum(w.get(key, 0) for w in workers)
            for key in ("processed", "failed", "active", "activations", "passivations")}


def table(result: dict[str, Any]) -> str:
    lines = [f"machine: {result['machine']} (load average {result['load_avg_before']} before the run)",
             f"engine: {result['db']}, {result['workers']} process workers"]
    for row in result["runs"]:
        lines.append(f"{row['clients']} client(s): {row['per_s']:>7,} EVENT/s  p50 {row['p50_ms']} ms  "
                     f"p99 {row['p99_ms']} ms  max {row['max_ms']} ms  ({row['commands']} EVENTs, "
                     f"{row['errors']} errors, ~{row['steps_per_pid']} steps/pid; START {row['start_per_s']}/s "
                     f"from 1 client; engine CPU {row['engine_cpu_us_per_event']} us/EVENT)")
    gauges = result["process_workers"]
    lines.append(f"process workers: processed {gauges['processed']}, failed {gauges['failed']}, "
                 f"active {gauges['active']}; engine threads {result['engine_threads']}, "
                 f"peak RSS {result['peak_rss_mb']} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="timed EVENTs per client")
    parser.add_argument("--pids", type=int, default=100, help="pids per client")
    parser.add_argument("--clients", default="1,8", help="client counts to measure, comma-separated")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                   f"Python {platform.python_version()}",
        "events_per_client": args.events, "pids_per_client": args.pids, "db": "sqlite", "workers": 8,
        "load_avg_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="brokerflow-bench-processes-") as folder:
        engine = EngineUnderTest(folder)
        try:
            engine.client.call("MngAddFlow", {"flow": FLOW})
            result["runs"] = [measure(engine, int(n), args.events, args.pids) for n in args.clients.split(",") if n]
            result["process_workers"] = process_gauges(engine)
            result["engine_threads"] = engine_threads(engine)
            result["peak_rss_mb"] = engine.peak_rss_mb()
        finally:
            result["stop_exit_code"] = engine.stop()
    print(table(result))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
