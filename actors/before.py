"""Before-hooks: rules that run inside the caller's request, before a record is written (an automation mode).

The matching rules of the record's brand run one after another in priority order, each seeing
the record as the earlier ones left it. A rule's actions run through the ordinary action
actors and this worker waits for the logged run, bounded by the request's time budget:

* ``record.set`` changes the value that will be written;
* ``operation.reject`` stops everything with ``REJECTED`` and the rule's message;
* a failed action (or the budget running out) cancels the operation with ``ACTION_FAILED``;
  what earlier actions already did (a notification sent, a webhook called) stays done;
* the final record is validated again (types of ``workflow.events.RECORD_SCHEMAS``).

Waiting is what a before-hook is, so it happens here, on a small pool of workers (requests
for the same record go to the same worker, in order) and never on the API thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import BeforeRequest
from brokerflow.actors.modes import ModeRules, new_job
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.rules import RunIds
from brokerflow.errors import ActionFailed, BrokerflowError, Rejected
from brokerflow.workflow.modes.contexts import (
    apply_results,
    check_record,
    hook_brand,
    hook_context,
    hook_trigger,
    stored_record,
)
from brokerflow.workflow.reference import ReferenceData

log = logging.getLogger("brokerflow.before")

DEFAULT_BUDGET_MS = 5000


class BeforeHooks:
    """``run(resource, operation, record) -> {"record", "changed"}``; blocks up to the budget."""

    def __init__(self, rules: ModeRules, refs: ReferenceData, pipeline: Pipeline, run_ids: RunIds,
                 now_ms: Callable[[], int], budget_ms: int = DEFAULT_BUDGET_MS) -> None:
        self.rules, self.refs, self.pipeline, self.run_ids = rules, refs, pipeline, run_ids
        self.now_ms, self.budget_ms = now_ms, budget_ms

    def run(self, resource: str, operation: str, record: Mapping[str, Any]) -> dict[str, Any]:
        check_record(resource, operation, record, "sent to the before-hooks")
        trigger = hook_trigger(resource, operation)
        brand = hook_brand(resource, record, self.refs)
        deadline = time.monotonic() + self.budget_ms / 1000.0
        stored = stored_record(resource, operation, record, self.refs)
        current = dict(record)
        for rule in self.rules.for_trigger(trigger, brand):
            ctx = hook_context(resource, current, brand, stored)
            if not rule.predicate(ctx):
                continue
            run = self._run_rule(rule, trigger, ctx, deadline)
            if run["status"] == "failed":
                raise ActionFailed(f"before-hook rule {rule.id} failed (run {run['id']}): {run.get('error')}; "
                                   f"the {resource} was not {operation}d")
            current, rejection = apply_results(current, run["actions"])
            if rejection is not None:
                raise Rejected(rejection)
        check_record(resource, operation, current, "as changed by the before-hooks")
        return {"record": current, "changed": current != dict(record)}

    def _run_rule(self, rule: Any, trigger: str, ctx: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        ran: Future = Future()
        key = ctx.get("_customer_id") if trigger.startswith("customer") else ctx.get("account.login")
        job = new_job(rule, trigger, f"before:{trigger}:{key}", ctx, self.run_ids.next(), self.now_ms(), reply=ran)
        self.pipeline.dispatch([job])
        try:
            return ran.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise ActionFailed(f"before-hooks exceeded their {self.budget_ms} ms budget in rule {rule.id}; "
                               "the operation is cancelled (actions still running finish on their own)") from None


class BeforeActor(SafeActor):
    kind = "before"

    def __init__(self, index: int, stats: StatsRegistry, hooks: BeforeHooks) -> None:
        super().__init__(f"before:{index}", stats)
        self.hooks = hooks
        self.handlers = {BeforeRequest: self.on_before}

    def on_before(self, message: BeforeRequest) -> None:
        try:
            message.reply.set_result(self.hooks.run(message.resource, message.operation, message.record))
        except BrokerflowError as exc:  # a refusal is an answer, not an actor failure
            message.reply.set_exception(exc)
