"""The event path's Python cost per stage, on one thread: the floor under the engine's CPU.

``brokerflow bench`` measures the engine end to end, where a dozen threads share the GIL. This
script runs the very same stages in one thread, in order, with nothing between them: the
real codec, de-duplication, router, rule actors, action actors (notifier, customer, KYC) and
run log, on the benchmark's world (4 brands x 50 rules, reference data, event stream) over a
fresh SQLite file and a bound outbound PUB. The actors are constructed but never started: their
handlers are called directly and what they tell each other is collected and handed on by hand.
Webhook jobs go straight to the run log (no HTTP here).

The garbage collector runs under the engine's policy (``brokerflow/app/gcpolicy.py``: the
startup heap frozen, a young pass every 50,000 allocations) unless ``--gc-gen0 0`` asks for
CPython's defaults. Under the defaults a pass every 700 allocations lands in whichever stage
happens to be allocating, so the stages' figures move with each other's allocations (fewer
objects in one stage showed as less time in another).

What it prints: microseconds of CPU (``time.thread_time``) per event for each stage, their
sum, and that sum as events/s. Set beside ``brokerflow bench``'s engine CPU per event, the gap
is what threads, hand-offs and the GIL add. It never asserts.

    python scripts/bench_hotpath.py [--events 60000] [--batch 2000] [--gc-gen0 50000]
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgpack

from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.customer import CustomerActor
from brokerflow.actors.history import EventHistory
from brokerflow.actors.kyc import KycActor
from brokerflow.actors.messages import EventBatch, ReloadRules, RunsFinished
from brokerflow.actors.notifier import NotifierActor
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.router import RouterActor, RouterCounters
from brokerflow.actors.rules import RuleActor, RunIds
from brokerflow.actors.runlog import RunCounters, RunLatency, RunLogActor
from brokerflow.app import benchdata, gcpolicy
from brokerflow.app.engine import REFERENCE_KINDS, now_ms
from brokerflow.bus.codec import decode
from brokerflow.bus.outbound import Outbound
from brokerflow.bus.sequence import Deduplicator
from brokerflow.storage import open_store
from brokerflow.workflow.reference import ReferenceData

API_KINDS = {"Group": "group", "Account": "account", "Customer": "customer", "Manager": "manager",
             "Rate": "rate", "KycStepTemplate": "kyc_step_template"}
STAGES = ("decode", "router", "rules", "notifier", "customer", "kyc", "runlog", "history")


class Inbox:
    """Stands where an actor ref would: keeps what it is told, for the next stage."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def tell(self, message: Any) -> None:
        self.messages.append(message)

    def take(self) -> list[Any]:
        taken, self.messages = self.messages, []
        return taken


def _frames(count: int) -> list[list[bytes]]:
    frames = []
    for index, (topic, record, event) in enumerate(benchdata.events(count)):
        payload = {"event": event, "record": record, "id": f"h{index}", "ts": int(time.time() * 1000),
                   "source": "hotpath", "seq": index + 1}
        frames.append([topic.encode(), msgpack.packb(payload, use_bin_type=True)])
    return frames


def _free_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


class HotPath:
    """The engine's stages wired by hand, one thread."""

    def __init__(self, folder: str) -> None:
        self.store = store = open_store(f"sqlite:///{Path(folder) / 'hotpath.db'}")
        for api_kind, records in benchdata.reference("http://127.0.0.1:9/hook").items():
            store.reference.upsert_many(API_KINDS[api_kind], records)
        self.refs = refs = ReferenceData()
        for kind in REFERENCE_KINDS:
            refs.load(kind, store.reference.all(kind))
        stats, self.pipeline = StatsRegistry(), Pipeline()
        self.inboxes = {name: Inbox() for name in ("notifier", "customer", "kyc", "webhook", "runlog")}
        for name, inbox in self.inboxes.items():
            self.pipeline.register(name, inbox)
        self.outbound = Outbound(_free_endpoint())
        self.echoes: list[Any] = []
        self.actors = {
            "notifier": NotifierActor(stats, self.pipeline, now_ms, refs, store.notifications, self.outbound),
            "customer": CustomerActor(stats, self.pipeline, now_ms, refs, store.reference, self.outbound,
                                      self.echoes.extend),
            "kyc": KycActor(stats, self.pipeline, now_ms, refs, store.kyc, self.outbound),
        }
        self.runlog = RunLogActor(stats, store.runs, RunCounters(), now_ms, latency=RunLatency())  # as the engine's
        run_ids = RunIds(store.runs, block=10_000)
        rules_by_brand: dict[str, list[dict]] = defaultdict(list)
        for rule in benchdata.rules("http://127.0.0.1:9/hook"):
            stored = store.rules.add(rule)
            rules_by_brand[stored["brand"]].append(stored)
        self.brand_inboxes: dict[str, Inbox] = {}
        self.rule_actors: dict[str, RuleActor] = {}
        for brand, rules in rules_by_brand.items():
            self.rule_actors[brand] = actor = RuleActor(brand, stats, self.pipeline, run_ids, now_ms)
            actor.on_reload(ReloadRules({brand: tuple(rules)}))
        # The event history of backtests (on by default in the engine): written once per batch here.
        self.history = EventHistory(store.history, now_ms, 168)
        self.router = RouterActor(stats, refs, store.reference, self._brand_inbox, Inbox(), RouterCounters(), 3,
                                  history=self.history)
        self.router.brand_actors = self.brand_inboxes
        for brand in rules_by_brand:
            self._brand_inbox(brand)
        self.dedup = Deduplicator()
        self.cpu = dict.fromkeys(STAGES, 0.0)

    def _brand_inbox(self, brand: str) -> Inbox:
        return self.brand_inboxes.setdefault(brand, Inbox())

    def _timed(self, stage: str, work: Any, *args: Any) -> Any:
        started = time.thread_time()
        result = work(*args)
        self.cpu[stage] += time.thread_time() - started
        return result

    def _decode(self, frames: list[list[bytes]]) -> list[Any]:
        received, check, events = int(time.time() * 1000), self.dedup.check, []
        for message in frames:
            event = decode(message, received, 1 << 20)
            if check(event) != "duplicate":
                events.append(event)
        return events

    def run_batch(self, frames: list[list[bytes]]) -> None:
        events = self._timed("decode", self._decode, frames)
        self._timed("router", self.router.on_events, EventBatch(tuple(events)))
        while True:
            for brand, inbox in self.brand_inboxes.items():
                for message in inbox.take():
                    self._timed("rules", self.rule_actors[brand].on_evaluate, message)
            moved = False
            for name, actor in self.actors.items():
                for message in self.inboxes[name].take():
                    moved = True
                    self._timed(name, actor.on_jobs, message)
            for message in self.inboxes["webhook"].take():  # no HTTP here: straight to the log
                self.inboxes["runlog"].tell(RunsFinished(message.jobs))
            if not moved:
                break
        for message in self.inboxes["runlog"].take():
            self._timed("runlog", self.runlog.on_finished, message)
        if self.echoes:  # the customer actor's changes, back through the router as the engine does
            echoes, self.echoes[:] = tuple(self.echoes), []
            self._timed("router", self.router.on_events, EventBatch(echoes))
        self._timed("history", self.history.flush_once)

    def close(self) -> None:
        self.outbound.close()
        self.store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_hotpath")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=2000, help="events per ingress batch")
    parser.add_argument("--gc-gen0", type=int, default=gcpolicy.DEFAULT_GEN0,
                        help="the engine's collector policy (0: CPython's defaults)")
    args = parser.parse_args(argv)
    frames = _frames(args.events)
    with tempfile.TemporaryDirectory(prefix="brokerflow-hotpath-") as folder:
        path = HotPath(folder)
        try:
            path.run_batch(frames[: args.batch])  # warm the caches (templates, profiles, rule index)
            gcpolicy.apply(args.gc_gen0)  # as `brokerflow serve` does once the engine is built
            path.cpu = dict.fromkeys(STAGES, 0.0)
            measured = frames[args.batch:]
            for start in range(0, len(measured), args.batch):
                path.run_batch(measured[start:start + args.batch])
            runs = path.runlog.counters.snapshot()["logged"]
        finally:
            path.close()
    per_event = {stage: round(seconds / len(measured) * 1e6, 2) for stage, seconds in path.cpu.items()}
    total = round(sum(per_event.values()), 2)
    result = {"events": len(measured), "runs_logged": runs, "gc_gen0": args.gc_gen0,
              "us_per_event": per_event, "total_us": total,
              "events_per_s_one_thread": round(1e6 / total) if total else 0}
    for stage in STAGES:
        print(f"{stage:10s} {per_event[stage]:7.2f} µs/event")
    print(f"{'total':10s} {total:7.2f} µs/event  = {result['events_per_s_one_thread']:,} events/s on one thread")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
