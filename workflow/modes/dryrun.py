"""``MngTestWorkflowRule`` for the automation triggers: what a rule would do, with no side effect.

The "event" of a mode is ``{"topic": <trigger>, "payload": ...}`` where the payload is what
that mode would see: the record for a before-hook, the input for ``manual``, the request
(``method``, ``route``, ``headers``, ``query``, ``body``) for ``sink.request``, the mail
(``from``, ``to``, ``subject``, ``body``) for ``email.*``, and for ``interval``/``timestamp``
optionally ``{"customer_id"}`` to test a sweep against one customer. The answer has the shape
of ``workflow.dryrun.dry_run``; a sweep also lists the customers that would match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokerflow.workflow.catalog import ACTIONS, BEFORE_TRIGGERS, EMAIL_TRIGGERS, SCHEDULED_TRIGGERS
from brokerflow.workflow.modes.contexts import (
    email_context,
    hook_brand,
    hook_context,
    is_sweep,
    manual_context,
    schedule_context,
    stored_record,
)
from brokerflow.workflow.modes.sinks import request_context, request_view
from brokerflow.workflow.reference import ReferenceData, stored
from brokerflow.workflow.rules.conditions import compile_conditions, explain
from brokerflow.workflow.rules.dryrun import render_action

SWEEP_LIST_CAP = 100
_EXECUTORS = {kind: spec.executor for kind, spec in ACTIONS.items()}


def _map(payload: Any) -> Mapping[str, Any]:
    return payload if isinstance(payload, Mapping) else {}


def _scheduled(rule: Mapping[str, Any], payload: Mapping[str, Any],
               refs: ReferenceData) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    brand = rule.get("brand")
    ctx = schedule_context(brand, 0)
    if not is_sweep(rule, _EXECUTORS):
        return ctx, None, {}
    predicate = compile_conditions(rule.get("conditions") or [])
    matching = []
    for customer_id, customer in sorted(list(refs.customers.items()), key=lambda kv: str(kv[0])):
        if customer.get("brand") == brand and predicate({**ctx, **refs.flat("customer", customer)}):
            matching.append(customer_id)
    extra = {"sweep": True, "customers": matching[:SWEEP_LIST_CAP], "customers_matching": len(matching)}
    customer = stored(refs.customers, payload.get("customer_id"))
    if customer is None or customer.get("brand") != brand:
        return ctx, "a sweep runs once per matching customer: give payload.customer_id to test one", extra
    ctx.update(refs.flat("customer", customer))
    ctx["_customer_id"] = customer.get("id")
    return ctx, None, extra


def mode_context(rule: Mapping[str, Any], trigger: str, payload: Any,
                 refs: ReferenceData) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """The context the mode would build, a reason it cannot be judged (or None), extra fields."""
    data = _map(payload)
    brand = rule.get("brand")
    if trigger in BEFORE_TRIGGERS:
        resource = trigger.split(".")[0]
        brand = hook_brand(resource, data, refs)
        reason = None if brand == rule.get("brand") else \
            f"brand mismatch: the record is of brand {brand}, the rule of brand {rule.get('brand')}"
        stored = stored_record(resource, trigger.rsplit("before", 1)[1].lower(), data, refs)
        return hook_context(resource, data, brand, stored), reason, {}
    if trigger == "manual":
        return manual_context(brand, data, "dry-run"), None, {}
    if trigger == "sink.request":
        view = request_view(str(data.get("method") or "POST"), str(data.get("route") or ""),
                            _map(data.get("headers")), _map(data.get("query")), data.get("body"))
        return {**request_context(view), "brand": brand}, None, {}
    if trigger in EMAIL_TRIGGERS:
        return email_context(data, brand), None, {}
    if trigger in SCHEDULED_TRIGGERS:
        return _scheduled(rule, data, refs)
    return {"brand": brand}, f"{trigger!r} is not an automation trigger", {}


def dry_run_mode(rule: Mapping[str, Any], trigger: str, payload: Any, refs: ReferenceData) -> dict[str, Any]:
    status = rule.get("status") or "active"
    ctx, reason, extra = mode_context(rule, trigger, payload, refs)
    if status != "active":
        reason = f"rule is not active (status {status})"
    elif trigger != rule.get("trigger"):
        reason = f"trigger mismatch: the test is {trigger}, the rule listens to {rule.get('trigger')}"
    conditions = rule.get("conditions") or []
    explained = explain(conditions, ctx)
    matched = reason is None and all(row["result"] for row in explained)
    actions = [render_action(a, ctx) for a in rule.get("actions") or () if isinstance(a, Mapping)]
    return {"matched": matched, "trigger": trigger, "brand": ctx.get("brand"), "reason": reason,
            "conditions": explained, "actions": actions if matched else [], **extra}
