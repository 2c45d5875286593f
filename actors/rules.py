"""A brand's rule actor: evaluates that brand's compiled rules and starts runs for matches.

Rules are compiled once per reload (``RuleSet``); evaluation is a dictionary lookup by
trigger and a call of a closure per rule. A condition that could not be evaluated for lack
of data (an unknown currency rate) is logged as a ``skipped`` run that says why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Protocol

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import Candidate, Evaluate, ReloadRules, ReloadState, RunJob
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.rulestate import RuleState
from brokerflow.bus.completion import Completion, Ticket
from brokerflow.workflow.rules.ruleset import CompiledRule, RuleSet

log = logging.getLogger("brokerflow.rules")

NO_EXTRA: MappingProxyType = MappingProxyType({})  # shared by every rule run without run_as


class RunIdSource(Protocol):
    """``store.runs`` of the storage package, as ``RunIds`` uses it."""

    def allocate_ids(self, n: int) -> range: ...


class RunIds:
    """Run ids handed out from blocks reserved in storage: unique across engines, cheap per run.

    Several actors share one instance. Taking the next id of the current block needs no lock:
    ``next()`` on a range iterator is one C call, atomic under the GIL. Only the thread that
    finds the block used up takes the lock and switches to the spare block, reserved ahead on a
    short-lived thread of its own: reserving is a write, which waits for the database's write
    lock (behind a run log batch), and the rule actors must not wait with it. Without a spare
    (the first block, or storage failing) the block is reserved there and then.

    With ``max_age_s`` (several processes on one database), a block older than that is dropped
    for a fresh one: ids then grow with time across processes, to within one block or
    ``max_age_s``, so the run log's newest-first order (by id) holds for the whole engine. The
    ids left in a dropped block are never used.
    """

    def __init__(self, runs_repo: RunIdSource, block: int = 1000, max_age_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, prefetch: bool = True) -> None:
        self.runs_repo, self.block = runs_repo, block
        self._lock = threading.Lock()
        self._ids = iter(())
        self._max_age_s, self._clock, self._prefetch = max_age_s, clock, prefetch
        self._expires = float("inf")
        self._spare: tuple[range, float] | None = None  # a reserved block and when it was reserved
        self._reserving = False

    def next(self) -> int:
        run_id = next(self._ids, None)
        if run_id is None or (self._max_age_s is not None and self._clock() >= self._expires):
            return self._refill(run_id)
        return run_id

    def _refill(self, taken: int | None = None) -> int:
        with self._lock:
            fresh = self._max_age_s is None or self._clock() < self._expires
            if taken is not None and fresh:
                return taken  # another thread reserved a new block meanwhile
            run_id = next(self._ids, None) if fresh else None
            if run_id is not None:
                return run_id
            while True:  # other threads take ids of a new block without the lock: it may be gone already
                spare = self._take_spare()
                block, reserved_at = spare if spare is not None else (self.runs_repo.allocate_ids(self.block),
                                                                       self._clock())
                self._ids = ids = iter(block)
                if self._max_age_s is not None:
                    self._expires = reserved_at + self._max_age_s
                self._reserve_spare()
                run_id = next(ids, None)
                if run_id is not None:
                    return run_id

    def _take_spare(self) -> tuple[range, float] | None:
        spare, self._spare = self._spare, None
        if spare is not None and self._max_age_s is not None and self._clock() - spare[1] >= self._max_age_s:
            return None  # too old to keep ids growing with time across processes
        return spare

    def _reserve_spare(self) -> None:
        """Under the lock: reserve the next block on a thread of its own, unless one is on its way."""
        if self._prefetch and not self._reserving and self._spare is None:
            self._reserving = True
            threading.Thread(target=self._reserve, name="brokerflow-run-ids", daemon=True).start()

    def _reserve(self) -> None:
        try:
            spare: tuple[range, float] | None = (self.runs_repo.allocate_ids(self.block), self._clock())
        except Exception:  # noqa: BLE001 - the next refill reserves in place, and says why if it fails
            log.exception("run ids: could not reserve the next block ahead")
            spare = None
        with self._lock:
            self._reserving = False
            if spare is not None and self._spare is None:
                self._spare = spare

    def wait_spare(self, timeout_s: float = 5.0) -> bool:
        """Until the spare block is reserved (tests; the engine never waits for it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._spare is not None:
                    return True
            time.sleep(0.005)
        return False


def start_job(rule: CompiledRule, candidate: Candidate, run_id: int, now_ms: int,
              status: str = "running", error: str | None = None) -> RunJob:
    """A run of ``rule``; one that is over already (skipped) logs its actions as skipped."""
    run_as = rule.run_as
    return RunJob(run_id, rule.id, rule.version, rule.brand, candidate.trigger, candidate.event_id,
                  rule.actions, candidate.context, now_ms, candidate.depth, (), status, error, None, "rule",
                  NO_EXTRA if run_as is None else {"run_as": run_as})


class RuleActor(SafeActor):
    kind = "rules"

    def __init__(self, brand: str, stats: StatsRegistry, pipeline: Pipeline, run_ids: RunIds,
                 now_ms: Callable[[], int], state: RuleState | None = None,
                 completion: Completion | None = None) -> None:
        super().__init__(f"rules:{brand}", stats)
        self.brand, self.pipeline, self.run_ids, self.now_ms = brand, pipeline, run_ids, now_ms
        self.state = state  # cooldowns and aggregate windows (actors.rulestate); None: rules keep none
        self.completion = completion  # replay-served events: one count per run started, settled
        self.ruleset = RuleSet.from_rules([])
        self.handlers = {Evaluate: self.on_evaluate, ReloadRules: self.on_reload,
                         ReloadState: self.on_reload_state}

    def on_reload(self, message: ReloadRules) -> None:
        self.ruleset = RuleSet.from_rules(list(message.rules_by_brand.get(self.brand, ())))
        if self.state is not None:
            self.state.reload(self.ruleset)
        log.info("brand %s: %d active rules loaded", self.brand, len(self.ruleset))

    def on_reload_state(self, message: ReloadState) -> None:
        """Partitions gained (``serve --cluster``): their keys' state as the last owner stored it,
        before this mailbox's next ``Evaluate`` (the router tells this where the ownership changed)."""
        if self.state is None:
            return
        started = time.monotonic()
        try:
            cooldowns, entries = self.state.take_over(self.ruleset, message.keys)
        except Exception:  # noqa: BLE001 - the rules go on with what this process had
            self.cell.failed += 1
            log.exception("brand %s: the rule state of %d gained partition(s) could not be loaded; their "
                          "cooldowns and windows go on from this process's memory", self.brand,
                          len(message.keys.gained))
            return
        log.info("brand %s: rule state of %d gained partition(s) loaded: %d cooldowns, %d window entries "
                 "(%.0f ms)", self.brand, len(message.keys.gained), cooldowns, entries,
                 (time.monotonic() - started) * 1000)

    def on_evaluate(self, message: Evaluate) -> None:
        """Every candidate against its trigger's rules; the loop is the rule actor's hot path.

        ``RuleSet.matching`` calls only the rules the event's values can satisfy (an index by
        value, threshold and affix) and says which to run and which to log as skipped. Should a
        predicate ever raise, that candidate is evaluated again rule by rule, so the broken rule
        gets its ``failed`` run and the others still run.
        """
        if self.ruleset.stateful and self.state is not None:
            self._evaluate_with_state(message)
            return
        jobs: list[RunJob] = []
        now = self.now_ms()
        matching, next_id = self.ruleset.matching, self.run_ids.next
        settled: list[tuple[Ticket | None, int]] | None = [] if self.completion is not None else None
        for candidate in message.items:
            started = len(jobs)
            try:
                outcomes = matching(candidate.trigger, candidate.context)
            except Exception:  # noqa: BLE001 - a broken predicate: the slow loop finds and logs it
                self._evaluate_one_by_one(candidate, now, jobs)
            else:
                for rule, reason in outcomes:
                    if reason is None:
                        jobs.append(start_job(rule, candidate, next_id(), now))
                    else:
                        jobs.append(start_job(rule, candidate, next_id(), now, "skipped", reason))
            if settled is not None:
                self._count_runs(candidate, jobs, started, settled)
        self._dispatch(jobs, settled)

    def _dispatch(self, jobs: list[RunJob], settled: list[tuple[Ticket | None, int]] | None) -> None:
        if settled:
            self.completion.settle(settled)  # before the runs can be logged and settled themselves
        if jobs:
            self.pipeline.dispatch(jobs)

    def _count_runs(self, candidate: Candidate, jobs: list[RunJob], started: int,
                    settled: list[tuple[Ticket | None, int]]) -> None:
        """A replay-served event: drop runs its rules already logged (before a crash), and turn
        its routing count into one count per run started."""
        ticket = candidate.context.get("_ticket")
        if ticket is None:
            return
        ran = self.completion.ran
        if self.completion.may_have_run(ticket):
            jobs[started:] = [job for job in jobs[started:] if not ran(ticket, job.rule_id)]
        settled.append((ticket, len(jobs) - started - 1))

    def _evaluate_with_state(self, message: Evaluate) -> None:
        """``on_evaluate`` for a rule set with aggregates or cooldowns: each event first feeds the
        trigger's aggregate streams (its values join the context), and a match of a rule with a
        cooldown runs only when the cooldown allows it (else it is counted as suppressed)."""
        jobs: list[RunJob] = []
        now, state, ruleset, suppressed = self.now_ms(), self.state, self.ruleset, 0
        settled: list[tuple[Ticket | None, int]] | None = [] if self.completion is not None else None
        for candidate in message.items:
            started = len(jobs)
            try:
                state.observe(ruleset, candidate)
                outcomes = ruleset.matching(candidate.trigger, candidate.context)
            except Exception:  # noqa: BLE001 - a broken predicate: the slow loop finds and logs it
                self._evaluate_one_by_one(candidate, now, jobs)
                outcomes = ()
            for rule, reason in outcomes:
                if reason is None and rule.cooldown is not None and not state.allow(rule, candidate, now):
                    suppressed += 1
                    continue
                jobs.append(start_job(rule, candidate, self.run_ids.next(), now, *(
                    ("running", None) if reason is None else ("skipped", reason))))
            if settled is not None:
                self._count_runs(candidate, jobs, started, settled)
        if suppressed:
            state.suppressed.add(self.name, suppressed)
        state.save()
        self._dispatch(jobs, settled)

    def _evaluate_one_by_one(self, candidate: Candidate, now: int, jobs: list[RunJob]) -> None:
        """The plain loop over the trigger's rules, each predicate guarded on its own."""
        next_id = self.run_ids.next
        try:
            ctx = candidate.context
            missing = ctx.get("_missing")
            for rule in self.ruleset.for_trigger(candidate.trigger):
                try:
                    holds = rule.predicate(ctx)
                except Exception as exc:  # noqa: BLE001 - a broken rule must not stop the others
                    jobs.append(self._broken(rule, candidate, now, exc))
                    continue
                if holds:
                    jobs.append(start_job(rule, candidate, next_id(), now))
                elif missing:
                    reason = rule.missing_reason(ctx)
                    if reason is not None:
                        jobs.append(start_job(rule, candidate, next_id(), now, "skipped", reason))
        except Exception:  # noqa: BLE001 - one broken candidate must not cost the batch
            self.cell.failed += 1
            event_id = getattr(candidate, "event_id", None)
            log.exception("%s: candidate %s could not be evaluated", self.name, event_id,
                          extra={"event_id": event_id})

    def _broken(self, rule: CompiledRule, candidate: Candidate, now: int, exc: Exception) -> RunJob:
        self.cell.failed += 1
        log.exception("rule %s failed to evaluate on event %s", rule.id, candidate.event_id,
                      extra={"rule_id": rule.id, "event_id": candidate.event_id})
        return start_job(rule, candidate, self.run_ids.next(), now, "failed",
                         f"condition evaluation failed: {type(exc).__name__}")
