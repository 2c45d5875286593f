"""What a rule would do for an event (``MngTestWorkflowRule``), computed with no side effect.

It walks the same steps as the runtime — trigger mapping, brand resolution, the evaluation
context, the conditions — and reports each, so a rule author sees why a rule did or did not
match; the actions are listed with their texts rendered as they would be sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from brokerflow.workflow.catalog import ACTIONS
from brokerflow.workflow.context import build_context
from brokerflow.workflow.events import Event
from brokerflow.workflow.reference import ReferenceData
from brokerflow.workflow.rules.conditions import explain, missing_reason
from brokerflow.workflow.rules.cooldown import cooldown_allows, cooldown_of
from brokerflow.workflow.rules.windows import Windows, key_text, stream_plans
from brokerflow.workflow.templates import render
from brokerflow.workflow.triggers import map_trigger

RENDERED_PARAMS = ("message", "body", "subject")


class StateReader(Protocol):
    """What a dry run reads of the engine's rule state (``storage.repositories.rulestate``)."""

    def window_of(self, brand: str, stream: str, key: str, since_ts: int, until_ts: int) -> list[tuple[int, Any]]:
        ...

    def cooldown_of(self, rule_id: Any, key: str) -> int | None:
        ...


def with_aggregates(rule: Mapping[str, Any], ctx: dict[str, Any], ts: int, state: StateReader | None) -> None:
    """Put the rule's aggregate values into ``ctx``: the stored window plus this event, nothing kept."""
    brand = rule.get("brand")
    for plan in stream_plans(rule.get("trigger") or "", [rule]):
        by_value = ctx.get(plan.by)
        if by_value is None:
            continue
        stored = [] if state is None else state.window_of(brand, plan.name, key_text(by_value),
                                                          ts - plan.retention_ms, ts)
        Windows().peek(plan, ctx, ts, list(stored))


def cooldown_report(rule: Mapping[str, Any], ctx: Mapping[str, Any], now_ms: int,
                    state: StateReader | None) -> dict[str, Any] | None:
    """The rule's cooldown for this event: its key value, when it last ran for it, whether it suppresses."""
    spec = cooldown_of(rule)
    if spec is None:
        return None
    value = ctx.get(spec.key)
    last = None if state is None or rule.get("id") is None else state.cooldown_of(rule["id"], key_text(value))
    return {"key": spec.key, "value": value, "seconds": spec.window_ms // 1000, "last_run_ms": last,
            "suppressed": not cooldown_allows(last, now_ms, spec.window_ms)}


def _unresolved(event: Event) -> str:
    if event.topic in ("trade.push", "account.push"):
        return (f"brand unresolved: login {event.record.get('login')} has no account group with a "
                f"brand (login -> account.group -> group.brand)")
    return "brand unresolved: the customer is unknown or has no brand"


def _gate(rule: Mapping[str, Any], event: Event, trigger: str | None, brand: str | None) -> str | None:
    """Why the rule would not even be evaluated for this event, or None."""
    status = rule.get("status") or "active"
    if status != "active":
        return f"rule is not active (status {status})"
    if trigger is None:
        return f"{event.topic} {event.event or ''}".rstrip() + " maps to no trigger"
    if trigger != rule.get("trigger"):
        return f"trigger mismatch: the event is {trigger}, the rule listens to {rule.get('trigger')}"
    if brand is None:
        return _unresolved(event)
    if brand != rule.get("brand"):
        return f"brand mismatch: the event is of brand {brand}, the rule of brand {rule.get('brand')}"
    return None


def render_action(action: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
    """An action as it would run: its executor and its params with texts rendered."""
    params = dict(action.get("params") or {})
    for name in RENDERED_PARAMS:
        if isinstance(params.get(name), str):
            params[name] = render(params[name], ctx)
    spec = ACTIONS.get(action.get("type"))
    return {"type": action.get("type"), "executor": spec.executor if spec else None, "params": params}


def dry_run(rule: Mapping[str, Any], event: Event, refs: ReferenceData, state: StateReader | None = None,
            now_ms: int | None = None) -> dict[str, Any]:
    """``{"matched", "trigger", "brand", "reason", "conditions", "actions"}``; ``actions`` is empty
    unless matched (it is what would happen), ``reason`` says why not when the rule was gated
    out or skipped for lack of data; plain failing conditions show in ``conditions``.

    Aggregates are computed over the stored window plus this event; a rule with a cooldown also
    gets ``cooldown`` and ``suppressed`` (a match its cooldown keeps from running: ``matched``
    stays true, ``actions`` is empty and ``reason`` says when it last ran).
    """
    trigger = map_trigger(event)
    brand = refs.brand_of(event)
    conditions = rule.get("conditions") or []
    ctx = build_context(trigger or rule.get("trigger") or "", event, refs)
    ts = event.ts_ms or event.received_ms
    with_aggregates(rule, ctx, ts, state)
    explained = explain(conditions, ctx)
    reason = _gate(rule, event, trigger, brand)
    holds = all(row["result"] for row in explained)
    if reason is None and not holds:
        reason = missing_reason(conditions, ctx)
    matched = reason is None and holds
    actions = [render_action(a, ctx) for a in rule.get("actions") or () if isinstance(a, Mapping)]
    out = {"matched": matched, "trigger": trigger, "brand": brand, "reason": reason,
           "conditions": explained, "actions": actions if matched else []}
    cooldown = cooldown_report(rule, ctx, event.received_ms if now_ms is None else now_ms, state)
    if cooldown is not None:
        out["cooldown"] = cooldown
        out["suppressed"] = matched and cooldown["suppressed"]
        if out["suppressed"]:
            out["actions"] = []
            out["reason"] = (f"cooldown: the rule ran for {cooldown['key']} = {cooldown['value']!r} at "
                             f"{cooldown['last_run_ms']} (unix ms), within {cooldown['seconds']} s: this match "
                             f"would be suppressed")
    return out
