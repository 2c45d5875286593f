"""Deferred rules: ``interval`` (cron) and ``timestamp`` (at) rules fired by a ticker (an automation mode).

``Scheduler.tick(now_ms)`` is one step: for each scheduled rule it plans the due time to fire
(``workflow.schedule``: the latest due time since the previous tick, older missed ones skipped
and counted), claims ``(rule, due time)`` in storage — the unique key lets exactly one tick,
of any engine, ever win it — and only then starts the runs. The previous tick's time is kept
in ``store.meta`` so a restarted engine knows what it missed. A claimed due time whose runs
are lost in a crash is not fired again: at most once, never twice.

A rule whose conditions or actions are about customers is a *sweep*: it runs once per
customer of its brand (from the replica) that matches its conditions. Other scheduled rules
run once per due time. Either way the run records the rule's ``run_as``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import pykka

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import RunJob, Tick
from brokerflow.actors.modes import ModeRules, new_job
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.rules import RunIds
from brokerflow.workflow.catalog import ACTIONS
from brokerflow.workflow.isotime import iso_ms
from brokerflow.workflow.modes.contexts import is_sweep, schedule_context, sweep_contexts
from brokerflow.workflow.modes.schedule import plan
from brokerflow.workflow.reference import ReferenceData
from brokerflow.workflow.rules.ruleset import CompiledRule

log = logging.getLogger("brokerflow.scheduler")

LAST_TICK_KEY = "scheduler.last_tick_ms"
PRUNE_EVERY_MS = 3_600_000
KEEP_CLAIMS_MS = 7 * 86_400_000
_EXECUTORS = {kind: spec.executor for kind, spec in ACTIONS.items()}


class ScheduleClaims(Protocol):
    """``store.schedules`` of the storage package: who fired which due time."""

    def claim(self, rule_id: int, due_at_ms: int) -> bool: ...

    def prune(self, before_ms: int) -> int: ...


class MetaValues(Protocol):
    """``store.meta`` of the storage package: the previous tick's time lives there."""

    def get(self, key: str, default: str | None = None) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class Scheduler:
    """The scheduler's logic over storage and the replica; the actor and tests call ``tick``."""

    def __init__(self, rules: ModeRules, schedules_repo: ScheduleClaims, meta_repo: MetaValues, refs: ReferenceData,
                 run_ids: RunIds) -> None:
        self.rules, self.schedules, self.meta, self.refs = rules, schedules_repo, meta_repo, refs
        self.run_ids = run_ids
        self.pruned_ms = 0

    def tick(self, now_ms: int) -> tuple[list[RunJob], list[tuple[Any, int]]]:
        """The runs to start at ``now_ms`` and the ``(rule_id, due_ms)`` pairs this tick won."""
        stored = self.meta.get(LAST_TICK_KEY)
        last_ms = int(stored) if stored and stored.isdigit() else None
        jobs: list[RunJob] = []
        fired: list[tuple[Any, int]] = []
        for rule in self.rules.for_trigger("interval") + self.rules.for_trigger("timestamp"):
            due_ms = self._due(rule, last_ms, now_ms)
            if due_ms is not None and self.schedules.claim(rule.id, due_ms):
                fired.append((rule.id, due_ms))
                jobs.extend(self._jobs(rule, due_ms, now_ms))
        if last_ms is None or now_ms > last_ms:
            self.meta.set(LAST_TICK_KEY, str(now_ms))
        self._prune(now_ms)
        return jobs, fired

    def _due(self, rule: CompiledRule, last_ms: int | None, now_ms: int) -> int | None:
        saved_ms = rule.rule.get("updated_at") or rule.rule.get("created_at") or 0
        since_ms = max(last_ms if last_ms is not None else saved_ms, saved_ms)
        due_ms, skipped = plan(rule.trigger, rule.rule.get("schedule"), since_ms, now_ms)
        if due_ms is not None and skipped:
            log.warning("rule %s: %d%s missed due times since %s skipped; firing the latest, %s",
                        rule.id, skipped, "+" if skipped >= 10_000 else "", iso_ms(since_ms), iso_ms(due_ms))
        return due_ms

    def _jobs(self, rule: CompiledRule, due_ms: int, now_ms: int) -> list[RunJob]:
        event_id = f"schedule:{rule.id}:{iso_ms(due_ms)}"
        if not is_sweep(rule.rule, _EXECUTORS):
            ctx = schedule_context(rule.brand, due_ms)
            if not rule.predicate(ctx):
                return []
            return [new_job(rule, rule.trigger, event_id, ctx, self.run_ids.next(), now_ms)]
        return [new_job(rule, rule.trigger, f"{event_id}:customer:{ctx['_customer_id']}", ctx,
                        self.run_ids.next(), now_ms)
                for ctx in sweep_contexts(rule.brand, due_ms, self.refs) if rule.predicate(ctx)]

    def _prune(self, now_ms: int) -> None:
        if now_ms - self.pruned_ms < PRUNE_EVERY_MS:
            return
        self.pruned_ms = now_ms
        try:
            self.schedules.prune(now_ms - KEEP_CLAIMS_MS)
        except Exception:  # noqa: BLE001 - old claims only cost space
            log.exception("pruning old schedule claims failed")


class SchedulerActor(SafeActor):
    kind = "scheduler"

    def __init__(self, stats: StatsRegistry, scheduler: Scheduler, pipeline: Pipeline) -> None:
        super().__init__("scheduler", stats)
        self.scheduler, self.pipeline = scheduler, pipeline
        self.handlers = {Tick: self.on_tick}

    def on_tick(self, message: Tick) -> None:
        jobs, fired = self.scheduler.tick(message.now_ms)
        if jobs:
            self.pipeline.dispatch(jobs)
        if message.reply is not None:
            message.reply.set_result(fired)


class Ticker:
    """Tells the scheduler ``Tick(now)`` every ``interval_s`` (``EVENTBUS_SCHEDULER_INTERVAL``)."""

    def __init__(self, interval_s: float, scheduler_ref: pykka.ActorRef, clock_ms: Callable[[], int]) -> None:
        self.interval_s, self.scheduler_ref, self.clock_ms = interval_s, scheduler_ref, clock_ms
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def step(self) -> None:
        try:
            self.scheduler_ref.tell(Tick(self.clock_ms()))
        except Exception:  # noqa: BLE001 - the scheduler is stopping
            log.warning("scheduler tick dropped: the scheduler is not running")

    def run(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            self.step()

    def start(self) -> Ticker:
        self.thread = threading.Thread(target=self.run, name="brokerflow-ticker", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
