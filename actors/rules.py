"""A brand's rule actor: evaluates that brand's compiled rules and starts runs for matches.

Rules are compiled once per reload (``RuleSet``); evaluation is a dictionary lookup by
trigger and a call of a closure per rule. A condition that could not be evaluated for lack
of data (an unknown currency rate) is logged as a ``skipped`` run that says why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from actors.base import SafeActor, StatsRegistry
from actors.messages import Candidate, Evaluate, ReloadRules, RunJob
from actors.pipeline import Pipeline
from workflow.conditions import missing_reason
from workflow.ruleset import CompiledRule, RuleSet

log = logging.getLogger("brokerflow.rules")


class RunIds:
    """Run ids handed out from blocks reserved in storage: unique across engines, cheap per run."""

    def __init__(self, runs_repo: Any, block: int = 1000) -> None:
        self.runs_repo, self.block = runs_repo, block
        self._lock = threading.Lock()
        self._ids = iter(())

    def next(self) -> int:
        with self._lock:
            for run_id in self._ids:
                return run_id
            self._ids = iter(self.runs_repo.allocate_ids(self.block))
            return next(self._ids)


def start_job(rule: CompiledRule, candidate: Candidate, run_id: int, now_ms: int,
              status: str = "running", error: str | None = None) -> RunJob:
    """A run of ``rule``; one that is over already (skipped) logs its actions as skipped."""
    return RunJob(
        run_id=run_id, rule_id=rule.id, rule_version=rule.version, brand=rule.brand,
        trigger=candidate.trigger, event_id=candidate.event_id,
        actions=rule.actions, context=candidate.context,
        started_ms=now_ms, depth=candidate.depth, status=status, error=error,
        extra={"run_as": rule.run_as} if rule.run_as is not None else {},
    )


class RuleActor(SafeActor):
    kind = "rules"

    def __init__(self, brand: str, stats: StatsRegistry, pipeline: Pipeline, run_ids: RunIds,
                 now_ms: Callable[[], int]) -> None:
        super().__init__(f"rules:{brand}", stats)
        self.brand, self.pipeline, self.run_ids, self.now_ms = brand, pipeline, run_ids, now_ms
        self.ruleset = RuleSet.from_rules([])
        self.handlers = {Evaluate: self.on_evaluate, ReloadRules: self.on_reload}

    def on_reload(self, message: ReloadRules) -> None:
        self.ruleset = RuleSet.from_rules(list(message.rules_by_brand.get(self.brand, ())))
        log.info("brand %s: %d active rules loaded", self.brand, len(self.ruleset))

    def on_evaluate(self, message: Evaluate) -> None:
        jobs: list[RunJob] = []
        now = self.now_ms()
        for candidate in message.items:
            try:
                for rule in self.ruleset.for_trigger(candidate.trigger):
                    job = self._evaluate(rule, candidate, now)
                    if job is not None:
                        jobs.append(job)
            except Exception:  # noqa: BLE001 - one broken candidate must not cost the batch
                self.cell.failed += 1
                log.exception("%s: candidate %s could not be evaluated", self.name,
                              getattr(candidate, "event_id", None))
        if jobs:
            self.pipeline.dispatch(jobs)

    def _evaluate(self, rule: CompiledRule, candidate: Candidate, now: int) -> RunJob | None:
        try:
            if rule.predicate(candidate.context):
                return start_job(rule, candidate, self.run_ids.next(), now)
        except Exception as exc:  # noqa: BLE001 - a broken rule must not stop the others
            self.cell.failed += 1
            log.exception("rule %s failed to evaluate on event %s", rule.id, candidate.event_id)
            return start_job(rule, candidate, self.run_ids.next(), now, "failed",
                             f"condition evaluation failed: {type(exc).__name__}")
        reason = missing_reason(rule.rule.get("conditions", []), candidate.context)
        if reason is not None:
            return start_job(rule, candidate, self.run_ids.next(), now, "skipped", reason)
        return None
