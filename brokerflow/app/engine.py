"""The engine: builds every part from one ``Settings``, starts them in order, stops them cleanly.

Start order follows the data: storage, the reference replica, the outbound bus, the actors
(back to front: run log, action actors, router), then the front doors (management API, HTTP,
ingress). Stop runs the other way and drains in between: no new input, every queued event
and in-flight action finished (bounded by ``stop_timeout_s``), the run log flushed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import TYPE_CHECKING, Any

import pykka
import zmq

from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.customer import CustomerActor
from brokerflow.actors.history import EventHistory
from brokerflow.actors.kyc import KycActor
from brokerflow.actors.messages import EventBatch, Flush, ReferenceUpdate, ReloadRules
from brokerflow.actors.notifier import NotifierActor
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.processes import FlowCache, start_process_pool
from brokerflow.actors.router import Ownership, RouterActor, RouterCounters
from brokerflow.actors.rules import RuleActor, RunIds
from brokerflow.actors.rulestate import RuleState, RuleStateWriter, Suppressed
from brokerflow.actors.runlog import RunCounters, RunLatency, RunLogActor
from brokerflow.actors.webhook import WebhookActor
from brokerflow.actors.webhook_delivery import Deliveries, WebhookMetrics
from brokerflow.actors.webhook_retries import WebhookRetries
from brokerflow.app.automation import Automation
from brokerflow.app.extension import EngineParts, Extension
from brokerflow.app.partitioning import Partitioning
from brokerflow.app.retention import Retention
from brokerflow.app.secret import server_secret
from brokerflow.bus.completion import Completion
from brokerflow.bus.ingress import COUNTERS as INGRESS_COUNTERS
from brokerflow.bus.ingress import Handoff, Ingress
from brokerflow.bus.outbound import Outbound
from brokerflow.bus.recovery import Recovery
from brokerflow.bus.webhook_sender import WebhookSender
from brokerflow.clock import now_ms
from brokerflow.errors import Conflict
from brokerflow.settings import Settings
from brokerflow.storage.db import checkpoint
from brokerflow.storage.repositories.history import HistoryReader
from brokerflow.storage.store import Store, open_store
from brokerflow.workflow.events import Event
from brokerflow.workflow.partitions import owned_partitions, partition_of, pid_key
from brokerflow.workflow.reference import ReferenceData

if TYPE_CHECKING:  # imported when the API starts: a process without it never loads them
    from brokerflow.api.http_gateway import HttpGateway
    from brokerflow.api.server import ApiServer
    from brokerflow.api.services import Services

log = logging.getLogger("brokerflow.engine")


def default_member() -> str:
    """A cluster member id unique across machines and restarts: host, pid, a random tail."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


REFERENCE_KINDS = ("group", "account", "customer", "manager", "rate", "kyc_step_template")
REFERENCE_APPLY_WAIT_S = 5.0  # a management upsert waits this long for the replica to hold it
RUN_ID_BLOCK_AGE_S = 1.0  # several processes on one database: a run id block is used for at most this long
CHECKPOINT_TICK_S = 0.5  # how often the run log is asked to store checkpoints that moved without runs


class Engine:
    """One running brokerflow: ``start()``, then ``stop()`` (idempotent)."""

    def __init__(self, settings: Settings, extensions: list[Extension] | None = None) -> None:
        self.settings = settings
        self.stats_registry = StatsRegistry()
        self.router_counters = RouterCounters(sharded=settings.shard_count > 1 or settings.cluster)
        self.run_counters = RunCounters()  # replaced by the stored totals in start(); SIGUSR1 may come first
        self.suppressed = Suppressed()  # matches cooldowns kept from running, since start
        self.run_latency = RunLatency()
        self.started_ms = now_ms()
        self.store: Store | None = None
        self.refs = ReferenceData()
        self.pipeline = Pipeline()
        # Replay-served sources (--replay): what each taken event still has to finish.
        self.completion: Completion | None = Completion() if settings.replay else None
        # Owned partitions: all of them in one process; every shard_count-th under serve --shards;
        # under serve --cluster none at first: the cluster link takes its share through the leases.
        self.member = (settings.member or default_member()) if settings.cluster else None
        self.partitions = () if settings.cluster else owned_partitions(settings.partitions, settings.shard_index,
                                                                       settings.shard_count)
        self.ownership = Ownership(settings.partitions, self.partitions)
        self.recovery: Recovery | None = None
        self.partitioning: Partitioning | None = None
        self.handoff = Handoff()  # every EventBatch for the router: the ingress's ceiling
        self._threads: list[threading.Thread] = []
        self._stop_input = threading.Event()
        self._stopped = False
        self.ingress: Ingress | None = None
        self.api_server: ApiServer | None = None
        self.http: HttpGateway | None = None
        self.services: Services | None = None
        self.webhook_metrics = WebhookMetrics()
        self.webhook_retries: WebhookRetries | None = None
        # The automation modes are the built-in extension (brokerflow/app/automation.py);
        # Retention trims the run log and notifications (brokerflow/app/retention.py).
        self.extensions: list[Extension] = ([Automation(), Retention(settings.runs_retain_days)]
                                            if extensions is None else list(extensions))
        if settings.cluster and extensions is None:
            from brokerflow.app.clusterlink import ClusterLink

            self.extensions.append(ClusterLink())

    # -- start -------------------------------------------------------------------------------
    def start(self) -> Engine:
        settings = self.settings
        if settings.cluster:
            from brokerflow.app.clusterlink import check_cluster_settings

            check_cluster_settings(settings)
        self.store = store = open_store(settings.db_url)
        changes_from = 0
        if settings.cluster:
            from brokerflow.app.clusterlink import check_cluster_store

            changes_from = check_cluster_store(settings, store)
        for kind in REFERENCE_KINDS:
            self.refs.load(kind, store.reference.all(kind))
        self.outbound = Outbound(settings.pub_bind)
        self.secret = server_secret(settings, store.meta)
        resume = self._resume_points(store)
        self._start_actors(store)
        self.partitioning = Partitioning(self.ownership, self.completion, lambda: self.recovery, self._tell_in_order,
                                         store.runs.ran_since, self.processes.forget_where, self.flush,
                                         self._pid_partition, self.member, flush_state=self.flush_rule_state)
        self.partitioning.changes_from = changes_from
        parts = EngineParts(settings, store, self.stats_registry, self.pipeline, self.refs, self.run_ids, now_ms,
                            self.submit, self.secret, self.partitioning)
        for extension in self.extensions:
            extension.after_actors_started(parts)
        self.reload_rules()
        self._spawn("webhook-retries", self.webhook_retries.run)  # stored retries, this run's and older ones
        self._start_services(store)
        if store.backend == "sqlite" and self.settings.checkpoint_interval_s > 0:
            self._spawn("checkpointer", self._checkpoints)
        self._start_ingress(store, resume)
        if self.completion is not None:
            self._spawn("checkpoints", self._store_checkpoints)
        for extension in self.extensions:
            extension.after_started(self.api_endpoint)
        log.info("brokerflow engine started: db=%s events=%s api=%s http=%s", store.backend,
                 ",".join(self.ingress.bound_endpoints()), self.api_endpoint, self.http.url if self.http else "off")
        return self

    def _start_actors(self, store: Store) -> None:
        stats, settings, pipeline = self.stats_registry, self.settings, self.pipeline
        self.run_counters = RunCounters(store.runs.counts())
        self.runlog = RunLogActor.start(stats, store.runs, self.run_counters, now_ms,
                                        settings.runlog_batch_rows, latency=self.run_latency,
                                        completion=self.completion, partitions=self.partitions,
                                        ownership=self.ownership, lease_owner=self.member)
        pipeline.register("runlog", self.runlog)
        pipeline.register("notifier", NotifierActor.start(stats, pipeline, now_ms, self.refs,
                                                          store.notifications, self.outbound))
        pipeline.register("customer", CustomerActor.start(stats, pipeline, now_ms, self.refs,
                                                          store.reference, self.outbound, self.submit))
        self.kyc = KycActor.start(stats, pipeline, now_ms, self.refs, store.kyc, self.outbound, self.completion)
        pipeline.register("kyc", self.kyc)
        self.webhook_sender = WebhookSender(settings.webhook_allow, settings.webhook_workers,
                                            extra_ca=settings.webhook_ca)
        self.deliveries = Deliveries(self.webhook_sender, store.webhooks, settings.webhook_secrets, now_ms,
                                     metrics=self.webhook_metrics)
        pipeline.register("webhook", WebhookActor.start(stats, pipeline, self.webhook_sender,
                                                        settings.webhook_workers, deliveries=self.deliveries))
        self.webhook_retries = WebhookRetries(store.webhooks, self.deliveries, pipeline, stats,
                                              max(1, settings.webhook_workers // 2), now_ms, on_exit=store.close)
        run_ids = self.run_ids = (RunIds(store.runs, block=1_000, max_age_s=RUN_ID_BLOCK_AGE_S)
                                  if settings.shares_the_database else RunIds(store.runs, block=10_000))
        state_writer = self.state_writer = RuleStateWriter.start(stats, store.rule_state, now_ms)
        pipeline.register("rulestate", state_writer)  # stopped with the action actors, after the drain

        def brand_actor(brand: str) -> pykka.ActorRef:
            state = RuleState(brand, store.rule_state, state_writer, self.suppressed)
            return RuleActor.start(brand, stats, pipeline, run_ids, now_ms, state, self.completion)

        self.flows = FlowCache(store.flows)
        self.processes = start_process_pool(settings.process_workers, stats, self.flows, store.processes,
                                            pipeline, run_ids, now_ms, settings.process_live_cap,
                                            settings.process_idle_s)
        if not self.ownership.everything or settings.cluster:
            self.processes.new_pid = self._owned_pid
            self.processes.owns_pid = self._owns_pid
        self._spawn("process-sweeper", self.processes.run_sweeper)  # idle passivation without traffic
        history = self.history = None
        if settings.event_retention_hours > 0:
            history = self.history = EventHistory(store.history, now_ms, settings.event_retention_hours)
            self._spawn("history", history.run)
        self.router = RouterActor.start(stats, self.refs, store.reference, brand_actor, self.kyc,
                                        self.router_counters, settings.loop_depth_limit, self.handoff,
                                        self.completion, history, self.ownership)

    def _start_services(self, store: Store) -> None:
        from brokerflow.api.dispatcher import Dispatcher
        from brokerflow.api.server import ApiServer
        from brokerflow.api.services import Services

        services = self.services = Services(store, self.refs, self.settings, now_ms=now_ms)
        services.rules_listeners.append(self.reload_rules)
        services.reference_listeners.append(self.reference_changed)
        services.stats_provider = self.stats
        if self.history is not None:
            services.history_flush = self.history.flush_once
            services.open_history = partial(HistoryReader, store.url)
        services.latency_provider = self.run_latency.snapshot
        services.dead_actors_provider = self.dead_parts
        services.process_handler = self.processes.handle
        services.flow_listeners.append(self.flows.changed)
        services.dead_letter_handler = self.redeliver_dead_letter
        for extension in self.extensions:
            extension.after_services_built(services)
        self.dispatcher = Dispatcher(services)
        self.api_server = ApiServer(self.settings.api_bind, self.dispatcher, self.settings.max_frame_bytes,
                                    forward=services.api_forward)
        self.api_endpoint = self.api_server.endpoint
        self._spawn("api", self.api_server.run)
        if self.settings.http:
            from brokerflow.api.http_gateway import HttpGateway, make_app

            host, _, port = self.settings.http.rpartition(":")
            self.http = HttpGateway(host or "127.0.0.1", int(port), make_app(self.dispatcher, services))
            self.http.start()

    def _checkpoints(self, stop: threading.Event) -> None:
        """SQLite: checkpoint the WAL every ``checkpoint_interval_s`` off the commit path."""
        while not stop.wait(self.settings.checkpoint_interval_s):
            try:
                checkpoint(self.store.db)
            except Exception:  # noqa: BLE001 - the next round retries; commits checkpoint as a backstop
                log.exception("WAL checkpoint failed")
        self.store.close()  # this thread's connection

    def _resume_points(self, store: Store) -> dict[str, int]:
        """Per replay-served source, the seq to resume from: the lowest checkpoint of the owned
        partitions, plus one; the runs logged past it are remembered so a replay skips them."""
        if self.completion is None:
            return {}
        if self.settings.cluster:  # nothing owned yet: start where the whole cluster is done; takeovers rewind
            return {source: min(by_partition.values()) + 1
                    for source, by_partition in store.runs.checkpoints(range(self.settings.partitions)).items()}
        resume = {source: min(by_partition.values()) + 1
                  for source, by_partition in store.runs.checkpoints(self.partitions).items()}
        for source, seq in resume.items():
            self.completion.remember_runs(source, store.runs.ran_since(source, seq - 1))
        if resume:
            log.info("resuming %d replay-served source(s) from their checkpoints", len(resume))
        return resume

    def _start_ingress(self, store: Store, resume: dict[str, int]) -> None:
        recovery = None
        if self.completion is not None:
            recovery = self.recovery = Recovery(list(self.settings.replay), self.completion, resume,
                                                zmq.Context.instance(), self.settings.max_frame_bytes)
        self.ingress = Ingress(self.settings, self._tell_router, event_store=store.events, handoff=self.handoff,
                               recovery=recovery)
        self._spawn("ingress", self.ingress.run)

    def _store_checkpoints(self, stop: threading.Event) -> None:
        """Replay-served sources whose events start no run move their checkpoint too."""
        while not stop.wait(CHECKPOINT_TICK_S):
            self.runlog.tell(Flush())

    def _spawn(self, name: str, target: Callable[[threading.Event], object]) -> None:
        thread = threading.Thread(target=target, args=(self._stop_input,), name=f"brokerflow-{name}",
                                  daemon=True)
        thread.start()
        self._threads.append(thread)

    def _owned_pid(self) -> str:
        """A new Workflow Machine pid whose partition this shard owns: the API broker routes by it."""
        owned, count = self.ownership.owned, self.settings.partitions
        if not owned:
            raise Conflict("this cluster member owns no partitions yet: start the process through another member, "
                           "or again in a few seconds")
        while True:  # shard_count tries on average
            pid = uuid.uuid4().hex
            if partition_of(pid_key(pid), count) in owned:
                return pid

    def _owns_pid(self, pid: str) -> bool:
        return partition_of(pid_key(pid), self.settings.partitions) in self.ownership.owned

    def _pid_partition(self, pid: str) -> int:
        return partition_of(pid_key(pid), self.settings.partitions)

    def _tell_in_order(self, message: object) -> None:
        """A message into the router's mailbox behind every batch handed so far (the handoff's lock)."""
        self.handoff.hand(lambda _events: self.router.tell(message), [])

    # -- hooks -------------------------------------------------------------------------------
    def submit(self, events: list[Event]) -> None:
        """Events into the router, counted by the handoff: our own changes (echoes, one causal
        level deeper) and tools' events; the ingress hands its own batches."""
        self.handoff.hand(self._tell_router, events)

    def _tell_router(self, events: list[Event]) -> None:
        self.router.tell(EventBatch(tuple(events)))

    def reload_rules(self) -> None:
        grouped: dict[str, list[dict]] = defaultdict(list)
        for rule in self.store.rules.list(status="active"):
            grouped[rule["brand"]].append(rule)
        reply: Future = Future()
        self.router.tell(ReloadRules({brand: tuple(rules) for brand, rules in grouped.items()}, reply))
        reply.result(timeout=10)

    def reference_changed(self, kind: str, record: dict) -> None:
        """Hand a stored change to the router's replica and wait until it holds it.

        The management call returns only then, so what an admin wrote is what the next dry run,
        sweep or event sees. A router too busy to apply it within ``REFERENCE_APPLY_WAIT_S``
        still applies it in order; the call does not wait longer.
        """
        applied: Future = Future()
        self.router.tell(ReferenceUpdate(kind, dict(record), reply=applied))
        try:
            applied.result(timeout=REFERENCE_APPLY_WAIT_S)
        except FutureTimeout:
            log.warning("the router has not applied a %s change after %.0f s; it will, in order",
                        kind, REFERENCE_APPLY_WAIT_S)

    def redeliver_dead_letter(self, dead: dict[str, Any]) -> Future:
        """``MngRetryDeadLetter``: one attempt now on the retry pool; the Future gets ``(dead letter, status)``."""
        return self.webhook_retries.pool.submit(self.deliveries.redeliver, dead)

    # -- monitoring --------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        bus = dict(self.ingress.stats()) if self.ingress else dict.fromkeys(INGRESS_COUNTERS, 0)
        bus.update(self.router_counters.snapshot())
        stats = {"actors": self.stats_registry.snapshot(), "bus": bus,
                 "runs": {**self.run_counters.snapshot(), "suppressed": self.suppressed.total},
                 "webhooks": self.webhook_stats(),
                 "uptime_s": round((now_ms() - self.started_ms) / 1000.0, 3)}
        for extension in self.extensions:
            stats.update(extension.stats())
        return stats

    def dead_parts(self) -> list[str]:
        """Actors that stopped and front-door threads that ended while the engine runs (``/ready``)."""
        dead = self.stats_registry.dead()
        if not self._stop_input.is_set():
            dead += [thread.name.removeprefix("brokerflow-") for thread in self._threads if not thread.is_alive()]
        return dead

    def webhook_stats(self) -> dict[str, Any]:
        """Deliveries by outcome, attempts, retries scheduled since start; pending retries and
        dead letters as stored now (``None`` when storage does not answer)."""
        figures = self.webhook_metrics.snapshot()
        for name, count in (("pending_retries", "pending_count"), ("dead_letters", "dead_letter_count")):
            try:
                figures[name] = getattr(self.store.webhooks, count)() if self.store is not None else 0
            except Exception:  # noqa: BLE001 - stats must answer while storage is down
                figures[name] = None
        return figures

    def busy(self) -> bool:
        """Is anything still queued or in flight anywhere in the pipeline?"""
        return self.stats_registry.busy()

    def drain(self, timeout_s: float) -> bool:
        """Wait until every queued event and action is done (polled: the actors are busy)."""
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while time.monotonic() < deadline:
            quiet = quiet + 1 if not self.busy() else 0
            if quiet >= 3:
                return True
            time.sleep(0.01)
        return False

    def flush(self, timeout_s: float = 10.0) -> None:
        reply: Future = Future()
        self.runlog.tell(Flush(reply))
        reply.result(timeout=timeout_s)

    def flush_rule_state(self, timeout_s: float = 10.0) -> None:
        """Store the cooldowns and window entries the rule actors have handed the writer so far
        (a partition handed over: before its lease is freed, so the next owner reads them)."""
        reply: Future = Future()
        self.state_writer.tell(Flush(reply))
        reply.result(timeout=timeout_s)

    # -- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        started = time.monotonic()
        budget = self.settings.stop_timeout_s
        self._stop_input.set()
        self._stop_webhook_retries(close=False)  # no new retries; those in flight finish in the drain
        for extension in reversed(self.extensions):
            self._call_hook(extension.before_stop_input)
        if self.ingress is not None:
            self._join("ingress")
            self._drain_ingress()
        if not self.drain(max(0.5, budget - 2.0)):
            log.warning("stop: work still in flight after %.1fs; the run log keeps what finished", budget)
        self._final_writes()
        for extension in reversed(self.extensions):
            self._call_hook(extension.after_drain)
        self._stop_webhook_retries(close=True)
        if self.http is not None:
            self.http.close()
        self._join("api")
        actors = (self.router, *self.processes.workers,
                  *(ref for kind, ref in self.pipeline.refs.items() if kind != "runlog"), self.runlog)
        for ref in actors:
            ref.stop(block=True, timeout=5)
        for closer in (self.ingress, self.api_server, self.outbound, self.store):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # noqa: BLE001
                    log.exception("stop: closing %s failed", type(closer).__name__)
        log.info("brokerflow engine stopped in %.2fs", time.monotonic() - started)

    def _final_writes(self) -> None:
        """The run log, the rule state and the event history written once the pipeline is drained
        (before a cluster member frees its leases: the next owners read them)."""
        try:
            self.flush(timeout_s=2.0)
        except Exception:  # noqa: BLE001 - stopping goes on; the error is in the log
            log.exception("stop: final run log flush failed")
        try:
            self.flush_rule_state(timeout_s=2.0)
        except Exception:  # noqa: BLE001 - stopping goes on; the writer tries again as it stops
            log.exception("stop: final rule state flush failed")
        if self.history is not None:
            self._join("history")
            self.history.flush_logged()

    def _stop_webhook_retries(self, close: bool) -> None:
        if self.webhook_retries is None:
            return
        if not close:
            self.webhook_retries.stop()
            return
        self.webhook_retries.close()
        self._join("webhook-retries")

    @staticmethod
    def _call_hook(hook: Callable[[], object]) -> None:
        try:
            hook()
        except Exception:  # noqa: BLE001 - stopping goes on; the error is in the log
            log.exception("stop: extension hook %s failed", getattr(hook, "__qualname__", hook))

    def _join(self, name: str) -> None:
        for thread in self._threads:
            if thread.name == f"brokerflow-{name}":
                thread.join(timeout=5)

    def _drain_ingress(self, max_polls: int = 50) -> None:
        """Take what the SUB socket already holds: delivered events are finished, not dropped.

        Runs only once the ingress thread has ended (the socket then belongs to this thread).
        """
        if any(t.name == "brokerflow-ingress" and t.is_alive() for t in self._threads):
            return
        try:
            for _ in range(max_polls):
                if not self.ingress.poll_once(0, ceiling=False):
                    break
        except Exception:  # noqa: BLE001 - stopping goes on
            log.exception("stop: draining the ingress failed")
