"""One shard's link to its siblings under ``serve --shards`` (docs/scaling.md): changes, stats and
the HTTP doors' forwarding.

A management change (rules, flows, reference data) reaches the shard whose API took it; that
shard's ``Services`` tells its own listeners. This extension adds one more listener that
publishes the change on the shard's control PUB (``ipc://<run_dir>/control-<i>``); every other
shard's control SUB receives it and calls the same listeners its own ``Services`` would, so the
rule actors, the replica and the flow cache of every shard follow. The change is already stored:
the others only reload what they hold.

Stats: every second the shard writes its own stats to storage (``meta``, ``stats:shard:<i>``);
``MngGetStats`` on any shard sums its siblings' bus counters into its own, lists every shard's
actors as ``shard<i>/<name>``, reads the run totals from the run log (one database for all) and
adds ``shards``: each shard's pid and how fresh its figures are.

HTTP: only shard 0 serves it. A Workflow Machine command over HTTP for a pid a sibling owns
(``workflow.partitions.shard_of`` its partition, as the API broker routes) goes to that sibling's
management API at ``ipc://<run_dir>/api-<i>`` (``app.clusterforward.Forwarder``, ``api.forwarding``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack
import zmq

from brokerflow.app.changes import ChangeFanout
from brokerflow.app.clusterforward import Forwarder
from brokerflow.app.extension import EngineParts, Extension
from brokerflow.clock import now_ms
from brokerflow.workflow.partitions import partition_of, pid_key, shard_of

if TYPE_CHECKING:
    from brokerflow.api.services import Services

log = logging.getLogger("brokerflow.shard")

STATS_EVERY_S = 1.0
STALE_MS = 5_000  # a shard whose figures are older than this is reported ``stale`` (dead or restarting)


def control_endpoint(run_dir: str, index: int) -> str:
    return f"ipc://{run_dir}/control-{index}"


def api_endpoint(run_dir: str, index: int) -> str:
    """Where shard ``index`` binds its management API: the API broker and shard 0's HTTP forwarder dial it."""
    return f"ipc://{run_dir}/api-{index}"


class ShardLink(Extension):
    """Publishes this shard's management changes and applies its siblings'; merges the stats."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.applied = 0  # changes from siblings applied here

    def after_actors_started(self, parts: EngineParts) -> None:
        settings = parts.settings
        self.index, self.count, self.run_dir = settings.shard_index, settings.shard_count, settings.run_dir or ""
        self.store = parts.store
        self.started_ms = now_ms()
        self.http, self.partitions = settings.http, settings.partitions
        self.forwarder: Forwarder | None = None

    def after_services_built(self, services: Services) -> None:
        self.services = services
        self.local_stats: Callable[[], dict[str, Any]] = services.stats_provider or services.stats
        services.stats_provider = self.stats_of_all
        context = zmq.Context.instance()
        self.pub = context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 500)
        self.pub.bind(control_endpoint(self.run_dir, self.index))
        self.sub = context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        for other in range(self.count):
            if other != self.index:
                self.sub.connect(control_endpoint(self.run_dir, other))
        self.fanout = ChangeFanout(services, self._send)
        if self.http:  # shard 0: its HTTP doors reach the processes its siblings own
            self.forwarder = Forwarder(lambda p: shard_of(p, self.count) == self.index,
                                       lambda p: api_endpoint(self.run_dir, shard_of(p, self.count)),
                                       lambda pid: partition_of(pid_key(pid), self.partitions), workers=8,
                                       owner="shard", retry_hint="a shard that stopped is started again within seconds")
            services.http_forward = self.forwarder.forward
        self._thread = threading.Thread(target=self._run, name="brokerflow-shardlink", daemon=True)
        self._thread.start()

    def before_stop_input(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self.pub.close()

    def after_drain(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()

    # -- changes out -------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        data = msgpack.packb({**message, "from": self.index}, use_bin_type=True, default=str)
        with self._lock:  # the API thread and the HTTP gateway's threads both change things
            if not self.pub.closed:
                self.pub.send(data)

    # -- changes in ----------------------------------------------------------------------------
    def _run(self) -> None:
        next_stats = 0.0
        try:
            while not self._stop.is_set():
                if self.sub.poll(200):
                    self._apply(self.sub.recv())
                if now_ms() >= next_stats:
                    next_stats = now_ms() + STATS_EVERY_S * 1000
                    self._write_stats()
        finally:
            self.sub.close()
            self.store.close()  # this thread's connection

    def _apply(self, data: bytes) -> None:
        try:
            message = msgpack.unpackb(data, raw=False)
            change = message["change"]
            listeners, args = self.fanout.listeners(message)
        except Exception:  # noqa: BLE001 - a sibling's bad message must not stop this shard
            log.exception("shard %d: a control message from a sibling could not be read", self.index)
            return
        for listener in listeners:
            try:
                listener(*args)
            except Exception:  # noqa: BLE001 - the change is stored; the other listeners go on
                log.exception("shard %d: applying a sibling's %s change failed", self.index, change)
        self.applied += 1

    # -- stats -------------------------------------------------------------------------------
    def _write_stats(self) -> None:
        try:
            snapshot = {"stats": self.local_stats(), "pid": os.getpid(), "at_ms": now_ms()}
            self.store.meta.set(f"stats:shard:{self.index}", json.dumps(snapshot, default=str))
        except Exception:  # noqa: BLE001 - the next second tries again
            log.exception("shard %d: storing its stats failed", self.index)

    def stats_of_all(self) -> dict[str, Any]:
        """``MngGetStats`` for the whole engine: this shard's figures and its siblings' stored ones."""
        own = self.local_stats()
        shards = {self.index: {"stats": own, "pid": os.getpid(), "at_ms": now_ms()}}
        for other in range(self.count):
            if other != self.index:
                raw = self.store.meta.get(f"stats:shard:{other}")
                if raw:
                    shards[other] = json.loads(raw)
        return merge_stats(self.index, shards, self.store.runs.counts(), now_ms())


def merge_stats(own_index: int, shards: dict[int, dict[str, Any]], runs: dict[str, int],
                at_ms: int) -> dict[str, Any]:
    """One engine's stats from each shard's: counters summed, actors listed per shard, runs from the log."""
    own = shards[own_index]["stats"]
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in own.items()}
    merged["bus"] = {}
    merged["actors"] = []
    for index, shard in sorted(shards.items()):
        stats = shard.get("stats", {})
        for key, value in stats.get("bus", {}).items():
            if isinstance(value, int):
                merged["bus"][key] = merged["bus"].get(key, 0) + value
        merged["actors"].extend({**actor, "name": f"shard{index}/{actor.get('name')}"}
                                for actor in stats.get("actors", []))
        for key, value in stats.items():  # extensions' figures: sum what is a flat map of numbers
            if key not in ("bus", "actors", "runs") and isinstance(value, dict) and index != own_index:
                base = merged.setdefault(key, {})
                for name, number in value.items():
                    if isinstance(number, int) and isinstance(base.get(name, 0), int):
                        base[name] = base.get(name, 0) + number
    merged["runs"] = runs
    merged["shards"] = [{"index": index, "pid": shard.get("pid"), "age_ms": max(0, at_ms - shard.get("at_ms", 0)),
                         "stale": at_ms - shard.get("at_ms", 0) > STALE_MS} for index, shard in sorted(shards.items())]
    return merged
