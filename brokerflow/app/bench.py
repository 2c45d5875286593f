"""``brokerflow bench``: end-to-end throughput and latency beside the transport's ceiling.

Every figure is measured in the same run, so machine noise cancels out of the ratios:

- ceiling: the same publisher sending the same events to a bare SUB that only decodes them;
- engine, max rate: a real ``brokerflow serve`` process on a fresh SQLite file with 4 brands
  × 50 rules, N events from a separate publisher process, until the last run is logged;
- engine, fixed rates: p50/p99/max from each event's ``ts`` to its run's ``finished_at``,
  beside the same paced publisher's latency to a bare SUB (the floor the machine sets);
- Workflow Machine: EVENT commands/s over REQ/REP with 1 and 8 clients;
- ``--shards N``: the max rate again, of ``serve --shards N`` on its own fresh SQLite file, and
  its ratio to the one-process figure of the same run (docs/scaling.md).
- engine via a relay, without and with ``serve --replay``: what checkpointing costs
  (``benchreplay``; ``--no-replay`` skips it).

``--crash`` runs only the ``kill -9`` run instead (``benchcrash``): lost and doubled runs.

It never asserts; it prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgpack
import zmq

from brokerflow.api.client import ApiClient
from brokerflow.app.benchdb import BenchDatabases
from brokerflow.app.benchengine import EngineUnderTest, follow, last_run_id, load_world, measure_max_rate, percentile
from brokerflow.app.benchprogress import Progress, Silent
from brokerflow.app.benchreport import plot, require_matplotlib, table
from brokerflow.app.benchwire import bare_sub as _bare_sub
from brokerflow.app.benchwire import receive_all
from brokerflow.app.benchwire import spawn_publisher as _spawn_publisher
from brokerflow.workflow.isotime import parse_iso_ms


def measure_ceiling(count: int, folder: str) -> dict[str, Any]:
    sub, endpoint = _bare_sub()
    proc, _ = _spawn_publisher(endpoint, count, 0, "ceiling", "c", folder)
    received, rate = receive_all(sub, count)
    proc.join(30)
    sub.close(linger=0)
    return {"events": count, "received": received, "events_per_s": round(rate)}


def measure_transport_latency(rate: int, seconds: float, folder: str) -> dict[str, Any]:
    """The fixed-rate latency floor: the same paced publisher to a bare SUB that only decodes.

    Latency is receive time minus the event's ``ts``, in ms like the engine's figure, so the
    engine's p99 can be read beside what the machine's scheduling and the transport alone cost.
    """
    sub, endpoint = _bare_sub()
    count = int(rate * seconds)
    proc, _ = _spawn_publisher(endpoint, count, rate, f"floor-{rate}", f"f{rate}-", folder)
    latencies: list[float] = []
    while len(latencies) < count and sub.poll(5000):
        _topic, payload = sub.recv_multipart()
        latencies.append(int(time.time() * 1000) - msgpack.unpackb(payload, raw=False)["ts"])
    proc.join(30)
    sub.close(linger=0)
    return {"rate": rate, "events": count, "received": len(latencies), "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies, default=0)}


class _Receiver(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def measure_retention_cost(count: int, folder: str, webhook_url: str, rounds: int = 2) -> dict[str, Any]:
    """Max rates of fresh engines with the event history off and on (the default), alternating
    off, on, off, on... so drift of the machine hits both alike; the medians and their ratio."""
    rates: dict[str, list[int]] = {"off": [], "on": []}
    for index in range(2 * rounds):
        mode = "off" if index % 2 == 0 else "on"
        sub = Path(folder) / f"history-{mode}-{index}"
        sub.mkdir()
        engine = EngineUnderTest(str(sub), retention_hours=0 if mode == "off" else None)
        try:
            load_world(engine, webhook_url)
            rates[mode].append(measure_max_rate(engine, count, str(sub))["events_per_s"])
        finally:
            engine.stop()
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    return {"history_on_events_per_s": round(on), "history_off_events_per_s": round(off),
            "cost": round(1 - on / max(1, off), 3), "runs": rates}


def measure_sharded(shards: int, count: int, folder: str, webhook_url: str, one_rate: int,
                    world: Callable[[EngineUnderTest], object] | None = None, rates: tuple[int, ...] = (),
                    fixed_seconds: float = 10.0, wm_clients: tuple[int, ...] = (), wm_seconds: float = 5.0,
                    progress: Progress | None = None, db: str | None = None) -> dict[str, Any]:
    """``serve --shards N`` on a fresh database: its max rate beside one process's of the same run,
    then the same fixed-rate latencies and Workflow Machine phases one process had.

    ``world`` loads the rules and reference data (the bench's own by default); ``shard_processes``
    is how many shards answered in ``MngGetStats``, so a figure can never come from one process.
    """
    sub = Path(folder) / f"shards-{shards}"
    sub.mkdir()
    engine = EngineUnderTest(str(sub), name=f"shards-{shards}", shards=shards, db=db)
    try:
        if world is None:
            load_world(engine, webhook_url)
        else:
            world(engine)
        time.sleep(1.0)  # the rules reach the other shards over their control channel: well within this
        figures = measure_max_rate(engine, count, str(sub))
        figures["cpu_s"] = _cpu_seconds(engine.proc.pid)
        figures["shard_processes"] = len(engine.stats().get("shards", ())) or 1
        fixed = [measure_fixed_rate(engine, rate, fixed_seconds, str(sub), progress) for rate in rates]
        workflow = [measure_workflow(engine, clients, wm_seconds) for clients in wm_clients]
    finally:
        figures_code = engine.stop()
    return {"shards": shards, "max_rate": figures, "ratio_to_one": round(figures["events_per_s"] / max(1, one_rate), 2),
            "fixed_rates": fixed, "workflow": workflow, "stop_exit_code": figures_code}


def _cpu_seconds(parent: int) -> float:
    """CPU seconds the shard processes (children of ``parent``) have used so far (0.0 without /proc)."""
    total = 0.0
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        for pid in children:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return round(total, 2)


def measure_fixed_rate(engine: EngineUnderTest, rate: int, seconds: float, folder: str,
                       progress: Progress | None = None) -> dict[str, Any]:
    count = int(rate * seconds)
    prefix = f"r{rate}-"
    before = engine.stats()
    first_id = last_run_id(engine)
    proc, stamps_path = _spawn_publisher(engine.events, count, rate, f"bench-{rate}", prefix, folder)
    follow(engine, proc, before["bus"]["received"], count, progress or Silent(0))
    engine.wait_idle(before["bus"]["received"], count)
    stamps = json.loads(Path(stamps_path).read_text())
    latencies = [parse_iso_ms(run["finished_at"]) - stamps[run["event_id"]]
                 for run in engine.runs_since(first_id) if run.get("event_id") in stamps]
    return {"rate": rate, "events": count, "runs": len(latencies),
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies, default=0)}


WM_PIDS_PER_CLIENT = 50  # each process sees a few dozen events, like a real onboarding


def _wm_client(endpoint: str, token: str, seconds: float, out: list[float]) -> None:
    client = ApiClient(endpoint, token, timeout_ms=30_000, context=zmq.Context())
    pids = [client.call("START", {"name": "bench_loop", "input": {}})["pid"] for _ in range(WM_PIDS_PER_CLIENT)]
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        client.call("EVENT", {"pid": pids[len(out) % len(pids)], "name": "tick", "input": {"n": len(out)}})
        out.append((time.perf_counter() - started) * 1000)
    client.close()


WM_FLOW = {"name": "bench_loop", "initial": "work",
           "states": {"work": {"on": {"tick": "work", "finish": "done"}}, "done": {"final": True}}}


def measure_workflow(engine: EngineUnderTest, clients: int, seconds: float) -> dict[str, Any]:
    if not engine.client.call("MngGetFlows")["flows"]:
        engine.client.call("MngAddFlow", {"flow": WM_FLOW})
    samples: list[list[float]] = [[] for _ in range(clients)]
    threads = [threading.Thread(target=_wm_client, args=(engine.api, engine.token, seconds, samples[i]))
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = seconds
    allv = [v for s in samples for v in s]
    return {"clients": clients, "commands": len(allv), "per_s": round(len(allv) / elapsed),
            "p50_ms": round(percentile(allv, 0.5), 2), "p99_ms": round(percentile(allv, 0.99), 2)}


def measure_soak(engine: EngineUnderTest, rate: int, seconds: float, folder: str) -> dict[str, Any]:
    """RSS sampled every 10 s while events arrive at ``rate`` for ``seconds``: flat, or growing?"""
    proc, _ = _spawn_publisher(engine.events, int(rate * seconds), rate, "bench-soak", "s-", folder)
    samples = []
    while proc.is_alive():
        samples.append(engine.rss_mb())
        proc.join(10)
    backlog = engine.stats()
    engine.wait_idle(0, 0, timeout_s=600)
    return {"rate": rate, "seconds": seconds, "rss_mb_first": samples[0] if samples else 0.0,
            "rss_mb_last": samples[-1] if samples else 0.0, "rss_mb_max": max(samples, default=0.0),
            "mailbox_at_end": sum(a["mailbox"] for a in backlog["actors"]), "samples": samples}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brokerflow bench", description="End-to-end benchmark (docs/benchmarks.md)")
    parser.add_argument("--events", type=int, default=100_000, help="events of the ceiling and max-rate phases")
    parser.add_argument("--fixed-seconds", type=float, default=10.0, help="seconds of each fixed-rate phase")
    parser.add_argument("--rates", default="1000,5000", help="comma-separated fixed rates (events/s)")
    parser.add_argument("--wm-seconds", type=float, default=5.0, help="seconds of each Workflow Machine phase")
    parser.add_argument("--soak-seconds", type=float, default=0.0, help="RSS soak (600 for the 10-minute check)")
    parser.add_argument("--soak-rate", type=int, default=5000, help="events/s during the soak")
    parser.add_argument("--no-relay", action="store_true", help="skip the relay's events/s")
    parser.add_argument("--retention-cost", action="store_true",
                        help="also measure the max rate with the event history off (--event-retention-hours 0)")
    parser.add_argument("--plot", metavar="FILE", help="also write the figures as a PNG chart "
                        "(needs matplotlib: pip install 'brokerflow[plot]')")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--shards", type=int, default=1, help="also the max rate of serve --shards N")
    parser.add_argument("--db", metavar="URL", help="run the engine (and --shards) on this PostgreSQL server, "
                        "each in a fresh schema dropped at the end (default: a fresh SQLite file)")
    parser.add_argument("--max-only", action="store_true", help="only the ceiling and the max rates")
    parser.add_argument("--no-replay", action="store_true",
                        help="skip the max rate through a relay with serve --replay against without")
    parser.add_argument("--crash", action="store_true",
                        help="only the kill -9 run: events through a relay into serve --replay; lost, doubled")
    parser.add_argument("--crash-rate", type=float, default=5000, help="the crash run's events/s (0: flat out)")
    parser.add_argument("--crash-down-seconds", type=float, default=2.0,
                        help="seconds the killed engine stays down while the publisher goes on")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.crash:
        return _crash(args)
    if args.plot:
        require_matplotlib()
    rates = [] if args.max_only else [int(rate) for rate in args.rates.split(",") if rate]
    phases = (4 + 2 * len(rates) + (0 if args.max_only else 2) + (1 if args.soak_seconds > 0 else 0)
              + (0 if args.no_relay or args.max_only else 1) + (1 if args.retention_cost else 0)
              + (1 if args.shards > 1 else 0) + (0 if args.no_replay or args.max_only else 1))
    progress = (Silent if args.quiet else Progress)(phases)
    try:
        databases = BenchDatabases(args.db)
    except ValueError as exc:
        print(f"brokerflow bench: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(args, rates, progress, databases)
    finally:
        databases.close()


def _run(args: argparse.Namespace, rates: list[int], progress: Progress, databases: BenchDatabases) -> int:
    with tempfile.TemporaryDirectory(prefix="brokerflow-bench-") as folder:
        receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        webhook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        result: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                                             f"Python {platform.python_version()}", "database": databases.backend}
        progress.phase(f"transport ceiling: {args.events:,} events PUB→SUB, no engine")
        result["ceiling"] = measure_ceiling(args.events, folder)
        progress.done(f"{result['ceiling']['events_per_s']:,} events/s")
        if not (args.no_relay or args.max_only):
            from brokerflow.app.benchrelay import measure_relay

            progress.phase(f"relay: {args.events:,} events publisher → relay → SUB, passing through and stamping")
            result["relay"] = [measure_relay(args.events, folder, stamping) for stamping in (False, True)]
            for relay in result["relay"]:
                relay["ratio_to_ceiling"] = round(relay["events_per_s"] / max(1, result["ceiling"]["events_per_s"]), 3)
        progress.phase("starting the engine (brokerflow serve) and loading rules and reference data")
        engine = EngineUnderTest(folder, db=databases.url(folder, "bench"))
        try:
            result["rules"] = load_world(engine, webhook_url)
            progress.done(f"{result['rules']} rules")
            progress.phase(f"engine max rate: {args.events:,} events as fast as they go")
            result["max_rate"] = measure_max_rate(engine, args.events, folder, progress)
            progress.done(f"{result['max_rate']['events_per_s']:,} events/s")
            result["ratio_to_ceiling"] = round(result["max_rate"]["events_per_s"]
                                               / max(1, result["ceiling"]["events_per_s"]), 3)
            result["fixed_rates"] = []
            for rate in rates:
                progress.phase(f"latency at {rate:,} events/s for {args.fixed_seconds:g} s")
                result["fixed_rates"].append(measure_fixed_rate(engine, rate, args.fixed_seconds, folder, progress))
                progress.done(f"p99 {result['fixed_rates'][-1]['p99_ms']} ms")
            result["transport_latency"] = []
            for rate in rates:
                progress.phase(f"transport latency alone at {rate:,} events/s")
                result["transport_latency"].append(measure_transport_latency(rate, args.fixed_seconds, folder))
            result["workflow"] = []
            for clients in () if args.max_only else (1, 8):
                progress.phase(f"Workflow Machine, {clients} client(s) for {args.wm_seconds:g} s")
                result["workflow"].append(measure_workflow(engine, clients, args.wm_seconds))
                progress.done(f"{result['workflow'][-1]['per_s']:,} EVENT/s")
            if args.soak_seconds > 0:
                progress.phase(f"soak at {args.soak_rate:,} events/s for {args.soak_seconds:g} s (RSS every 10 s)")
                result["soak"] = measure_soak(engine, args.soak_rate, args.soak_seconds, folder)
            result["peak_rss_mb"] = engine.peak_rss_mb()
        finally:
            progress.phase("stopping the engine")
            result["stop_exit_code"] = engine.stop()
        try:
            _after_the_engine(args, folder, webhook_url, result, progress, databases)
        finally:
            receiver.shutdown()
    print(table(result))
    print(json.dumps(result, sort_keys=True))
    if args.plot:
        plot(result, args.plot)
        print(f"chart written to {args.plot}", file=sys.stderr)
    return 0


def _after_the_engine(args: argparse.Namespace, folder: str, webhook_url: str, result: dict[str, Any],
                      progress: Progress, databases: BenchDatabases) -> None:
    """The phases that start engines of their own: history cost, shards, checkpointing's cost."""
    if args.retention_cost:
        progress.phase("event history cost: fresh engines alternating the history off and on")
        result["retention_cost"] = measure_retention_cost(args.events, folder, webhook_url)
    if args.shards > 1:
        progress.phase(f"serve --shards {args.shards}: max rate on a fresh database")
        result["sharded"] = measure_sharded(
            args.shards, args.events, folder, webhook_url, result["max_rate"]["events_per_s"],
            rates=tuple(fixed["rate"] for fixed in result["fixed_rates"]), fixed_seconds=args.fixed_seconds,
            wm_clients=tuple(wm["clients"] for wm in result["workflow"]), wm_seconds=args.wm_seconds,
            progress=progress, db=None if databases.server_url is None else databases.url(folder, "shards"))
    if not (args.no_replay or args.max_only):
        from brokerflow.app.benchreplay import measure_replay_cost

        progress.phase("engine through a relay, without and with serve --replay: checkpointing's cost")
        result["replay"] = measure_replay_cost(args.events, folder, webhook_url)


def _crash(args: argparse.Namespace) -> int:
    from brokerflow.app.benchcrash import measure_crash, table

    with tempfile.TemporaryDirectory(prefix="brokerflow-crash-") as folder:
        result = measure_crash(args.events, folder, rate=args.crash_rate, down_s=args.crash_down_seconds)
    print(table(result))
    print(json.dumps(result, sort_keys=True))
    return 0
