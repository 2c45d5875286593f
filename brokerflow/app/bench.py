"""``brokerflow bench``: end-to-end throughput and latency beside the transport's ceiling.

Every figure is measured in the same run, so machine noise cancels out of the ratios:

- ceiling: the same publisher sending the same events to a bare SUB that only decodes them;
- relay: the same publisher → a real ``brokerflow relay`` (journal, stamping) → a bare SUB
  that decodes (``benchrelay``), passing through and stamping, and its ratio to the ceiling;
- engine, max rate: a real ``brokerflow serve`` process on a fresh SQLite file with 4 brands
  × 50 rules, N events from a separate publisher process, until the last run is logged;
- engine, fixed rates: p50/p99/max from each event's ``ts`` to its run's ``finished_at``,
  beside the same paced publisher's latency to a bare SUB (the floor the machine sets);
- Workflow Machine: EVENT commands/s over REQ/REP with 1 and 8 clients;
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
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgpack
import zmq

from brokerflow.api.client import ApiClient
from brokerflow.app.benchengine import EngineUnderTest, last_run_id, load_world, measure_max_rate
from brokerflow.app.benchwire import bare_sub as _bare_sub
from brokerflow.app.benchwire import spawn_publisher as _spawn_publisher
from brokerflow.workflow.isotime import parse_iso_ms


def measure_ceiling(count: int, folder: str) -> dict[str, Any]:
    sub, endpoint = _bare_sub()
    proc, _ = _spawn_publisher(endpoint, count, 0, "ceiling", "c", folder)
    received, first, last = 0, 0.0, 0.0
    while received < count and sub.poll(5000):
        _topic, payload = sub.recv_multipart()
        msgpack.unpackb(payload, raw=False)
        received += 1
        last = time.perf_counter()
        first = first or last
    proc.join(30)
    sub.close(linger=0)
    rate = (received - 1) / (last - first) if received > 1 and last > first else 0.0
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
    return {"rate": rate, "events": count, "received": len(latencies), "p50_ms": _percentile(latencies, 0.5),
            "p99_ms": _percentile(latencies, 0.99), "max_ms": max(latencies, default=0)}


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


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_fixed_rate(engine: EngineUnderTest, rate: int, seconds: float, folder: str) -> dict[str, Any]:
    count = int(rate * seconds)
    prefix = f"r{rate}-"
    before = engine.stats()
    first_id = last_run_id(engine)
    proc, stamps_path = _spawn_publisher(engine.events, count, rate, f"bench-{rate}", prefix, folder)
    proc.join(600)
    engine.wait_idle(before["bus"]["received"] + count)
    stamps = json.loads(Path(stamps_path).read_text())
    latencies = [parse_iso_ms(run["finished_at"]) - stamps[run["event_id"]]
                 for run in engine.runs_since(first_id) if run.get("event_id") in stamps]
    return {"rate": rate, "events": count, "runs": len(latencies),
            "p50_ms": _percentile(latencies, 0.5), "p99_ms": _percentile(latencies, 0.99),
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
            "p50_ms": round(_percentile(allv, 0.5), 2), "p99_ms": round(_percentile(allv, 0.99), 2)}


def measure_soak(engine: EngineUnderTest, rate: int, seconds: float, folder: str) -> dict[str, Any]:
    """RSS sampled every 10 s while events arrive at ``rate`` for ``seconds``: flat, or growing?"""
    proc, _ = _spawn_publisher(engine.events, int(rate * seconds), rate, "bench-soak", "s-", folder)
    samples = []
    while proc.is_alive():
        samples.append(engine.rss_mb())
        proc.join(10)
    backlog = engine.stats()
    engine.wait_idle(0, timeout_s=600)
    return {"rate": rate, "seconds": seconds, "rss_mb_first": samples[0] if samples else 0.0,
            "rss_mb_last": samples[-1] if samples else 0.0, "rss_mb_max": max(samples, default=0.0),
            "mailbox_at_end": sum(a["mailbox"] for a in backlog["actors"]), "samples": samples}


def _table(result: dict[str, Any]) -> str:
    c, m = result["ceiling"], result["max_rate"]
    lines = [f"machine: {result['machine']}",
             f"ceiling (PUB→SUB + decode)   {c['events_per_s']:>9,} events/s",
             *[f"relay, {r['mode']:<12}         {r['events_per_s']:>9,} events/s  ({r['ratio_to_ceiling']:.0%} of "
               f"ceiling; lost {r['lost']}; publisher → relay → SUB + decode)" for r in result.get("relay", [])],
             f"engine max rate              {m['events_per_s']:>9,} events/s  "
             f"({result['ratio_to_ceiling']:.0%} of ceiling; lost {m['lost']}; {m['runs']} runs, "
             f"{m['runs_per_event']}/event; peak RSS {result['peak_rss_mb']} MB)"]
    floors = {floor["rate"]: floor for floor in result.get("transport_latency", [])}
    for fixed in result["fixed_rates"]:
        lines.append(f"engine at {fixed['rate']:>5}/s latency       p50 {fixed['p50_ms']} ms  p99 {fixed['p99_ms']} ms"
                     f"  max {fixed['max_ms']} ms  ({fixed['runs']} runs)")
        floor = floors.get(fixed["rate"])
        if floor:
            lines.append(f"  transport alone at {floor['rate']:>5}/s  p50 {floor['p50_ms']} ms"
                         f"  p99 {floor['p99_ms']} ms  max {floor['max_ms']} ms  (PUB→SUB + decode, same publisher)")
    for wm in result["workflow"]:
        lines.append(f"Workflow Machine {wm['clients']} client(s)   {wm['per_s']:>9,} EVENT/s  p50 {wm['p50_ms']} ms"
                     f"  p99 {wm['p99_ms']} ms")
    replay = result.get("replay")
    if replay:
        for side in ("without", "with"):
            r = replay[side]
            lines.append(f"engine via relay, {side + ' --replay':<15}{r['events_per_s']:>9,} events/s  "
                         f"(lost {r['lost']}; {r['runs']} runs; replayed {r['replayed']}; "
                         f"{r['cpu_us_per_event']} µs CPU/event; "
                         f"peak RSS {r['peak_rss_mb']} MB)")
        lines.append(f"checkpointing costs          {replay['cost']:>9.1%} of the max rate via the relay "
                     f"({replay['cpu_cost']:+.1%} engine CPU per event)")
    soak = result.get("soak")
    if soak:
        lines.append(f"soak {soak['rate']}/s for {soak['seconds']:.0f}s      RSS {soak['rss_mb_first']} → "
                     f"{soak['rss_mb_last']} MB (max {soak['rss_mb_max']}); backlog at end {soak['mailbox_at_end']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brokerflow bench")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--fixed-seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="1000,5000")
    parser.add_argument("--wm-seconds", type=float, default=5.0)
    parser.add_argument("--soak-seconds", type=float, default=0.0, help="RSS soak (600 for the 10-minute check)")
    parser.add_argument("--soak-rate", type=int, default=5000)
    parser.add_argument("--no-relay", action="store_true", help="skip the relay's events/s")
    parser.add_argument("--no-replay", action="store_true",
                        help="skip the max rate through a relay with serve --replay against without")
    parser.add_argument("--crash", action="store_true",
                        help="only the kill -9 run: events through a relay into serve --replay; lost, doubled")
    parser.add_argument("--crash-rate", type=float, default=5000, help="the crash run's events/s (0: flat out)")
    parser.add_argument("--crash-down-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.crash:
        return _crash(args)
    with tempfile.TemporaryDirectory(prefix="brokerflow-bench-") as folder:
        receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        webhook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        result: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                                             f"Python {platform.python_version()}"}
        result["ceiling"] = measure_ceiling(args.events, folder)
        if not args.no_relay:
            from brokerflow.app.benchrelay import measure_relay

            result["relay"] = [measure_relay(args.events, folder, stamping) for stamping in (False, True)]
            for relay in result["relay"]:
                relay["ratio_to_ceiling"] = round(relay["events_per_s"] / max(1, result["ceiling"]["events_per_s"]), 3)
        engine = EngineUnderTest(folder)
        try:
            result["rules"] = load_world(engine, webhook_url)
            result["max_rate"] = measure_max_rate(engine, args.events, folder)
            result["ratio_to_ceiling"] = round(result["max_rate"]["events_per_s"]
                                               / max(1, result["ceiling"]["events_per_s"]), 3)
            rates = [int(rate) for rate in args.rates.split(",") if rate]
            result["fixed_rates"] = [measure_fixed_rate(engine, rate, args.fixed_seconds, folder) for rate in rates]
            result["transport_latency"] = [measure_transport_latency(rate, args.fixed_seconds, folder)
                                           for rate in rates]
            result["workflow"] = [measure_workflow(engine, clients, args.wm_seconds) for clients in (1, 8)]
            if args.soak_seconds > 0:
                result["soak"] = measure_soak(engine, args.soak_rate, args.soak_seconds, folder)
            result["peak_rss_mb"] = engine.peak_rss_mb()
        finally:
            result["stop_exit_code"] = engine.stop()
        try:
            if not args.no_replay:
                from brokerflow.app.benchreplay import measure_replay_cost

                result["replay"] = measure_replay_cost(args.events, folder, webhook_url)
        finally:
            receiver.shutdown()
    print(_table(result))
    print(json.dumps(result, sort_keys=True))
    return 0


def _crash(args: argparse.Namespace) -> int:
    from brokerflow.app.benchcrash import measure_crash, table

    with tempfile.TemporaryDirectory(prefix="brokerflow-crash-") as folder:
        result = measure_crash(args.events, folder, rate=args.crash_rate, down_s=args.crash_down_seconds)
    print(table(result))
    print(json.dumps(result, sort_keys=True))
    return 0
