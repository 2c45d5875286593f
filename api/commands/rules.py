"""Workflow rules: validate, add, update, archive, delete, read, list, and dry-run.

Writes are admin-only (seed ``000``, "Access Model"); a brand-scoped token reads and writes
only rules of its brand and may not move a rule to another brand. Every stored change tells
``services.rules_changed()`` so the rule actors reload.
"""

from __future__ import annotations

from typing import Any

from api.access import ADMIN_ONLY, Principal, require_brand, scope_filter
from api.commands._params import get, invalid, no_unknown
from api.commands._registry import CommandContext, command
from api.commands._render import with_iso_times
from api.envelope import Reply, message
from brokerflow.errors import MalformedEvent, ValidationFailed
from workflow.catalog import MODE_TRIGGERS
from workflow.dryrun import dry_run
from workflow.events import parse_event
from workflow.mode_dryrun import dry_run_mode
from workflow.validation import check_rule, validate_rule

# What a caller may set; the rest (id, version, audit fields) is the store's.
EDITABLE = ("name", "brand", "trigger", "status", "priority", "conditions", "actions",
            "schedule", "run_as", "exec_roles")


def _rule_param(params: dict[str, Any]) -> dict[str, Any]:
    return get(params, "rule", dict, required=True)


def _warnings(rule: dict[str, Any]) -> list[dict[str, str]]:
    return [message(f"{p.path}: {p.message}") for p in validate_rule(rule).warnings]


def visible_rule(ctx: CommandContext, rule_id: Any) -> dict[str, Any]:
    """The stored rule ``rule_id`` (NOT_FOUND), if the caller's brand scope covers it."""
    rule = ctx.services.store.rules.get(rule_id)
    require_brand(ctx.principal, rule.get("brand"))
    return rule


def _rule_id(params: dict[str, Any]) -> int:
    return get(params, "id", int, required=True)


@command("MngValidateWorkflowRule")
def validate(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    if "rule" not in params:
        raise invalid("rule", "is required")
    return validate_rule(params["rule"]).as_dict()


@command("MngAddWorkflowRule", roles=ADMIN_ONLY)
def add(ctx: CommandContext, params: dict[str, Any]) -> Reply:
    raw = _rule_param(params)
    rule = check_rule(raw)
    require_brand(ctx.principal, rule["brand"])
    stored = ctx.services.store.rules.add(rule, by=ctx.principal.actor)
    ctx.services.rules_changed()
    return Reply({"rule": with_iso_times(stored)}, _warnings(raw))


@command("MngUpdateWorkflowRule", roles=ADMIN_ONLY)
def update(ctx: CommandContext, params: dict[str, Any]) -> Reply:
    rule_id, version = _rule_id(params), get(params, "version", int, required=True)
    changes = _rule_param(params)
    current = visible_rule(ctx, rule_id)
    merged = {**{k: current.get(k) for k in EDITABLE}, **changes}
    rule = check_rule(merged)
    require_brand(ctx.principal, rule["brand"])
    stored = ctx.services.store.rules.update(rule_id, version, rule, by=ctx.principal.actor)
    ctx.services.rules_changed()
    return Reply({"rule": with_iso_times(stored)}, _warnings(merged))


@command("MngArchiveWorkflowRule", roles=ADMIN_ONLY)
def archive(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    rule_id = _rule_id(params)
    visible_rule(ctx, rule_id)
    stored = ctx.services.store.rules.archive(rule_id, by=ctx.principal.actor)
    ctx.services.rules_changed()
    return {"rule": with_iso_times(stored)}


@command("MngDeleteWorkflowRule", roles=ADMIN_ONLY)
def delete(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    rule_id = _rule_id(params)
    visible_rule(ctx, rule_id)
    ctx.services.store.rules.delete(rule_id)
    ctx.services.rules_changed()
    return {}


@command("MngGetWorkflowRule")
def get_rule(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"rule": with_iso_times(visible_rule(ctx, _rule_id(params)))}


@command("MngGetWorkflowRules")
def list_rules(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    no_unknown(params, ("brand", "trigger", "status"))
    brand = scope_filter(ctx.principal, get(params, "brand", str))
    rules = ctx.services.store.rules.list(
        brand=brand, trigger=get(params, "trigger", str), status=get(params, "status", str)
    )
    return {"rules": [with_iso_times(r) for r in rules]}


def _event(ctx: CommandContext, params: dict[str, Any]) -> Any:
    spec = get(params, "event", dict, required=True)
    topic = get(spec, "topic", str, required=True, path="event.topic")
    if "payload" not in spec:
        raise invalid("event.payload", "is required")
    try:
        return parse_event(topic, spec["payload"], ctx.services.now_ms())
    except MalformedEvent as exc:
        raise invalid("event", exc.text) from None


def _rule_to_test(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("rule") is not None:
        rule = check_rule(_rule_param(params))
        require_brand(ctx.principal, rule["brand"])
        return rule
    if params.get("id") is None:
        raise ValidationFailed("give a rule or the id of a stored rule",
                               details=[{"path": "rule", "message": "rule or id is required"}])
    return visible_rule(ctx, _rule_id(params))


def _require_event_brand(principal: Principal, brand: str | None) -> None:
    """A scoped token may not test against another brand's accounts and customers."""
    if brand is not None:
        require_brand(principal, brand)


@command("MngTestWorkflowRule")
def test_rule(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    rule = _rule_to_test(ctx, params)
    spec = params.get("event")
    if isinstance(spec, dict) and spec.get("topic") in MODE_TRIGGERS:  # seed 002: workflow.mode_dryrun
        payload = spec.get("payload")
        record = payload.get("record", payload) if isinstance(payload, dict) else None
        if isinstance(record, dict) and isinstance(record.get("brand"), str):
            _require_event_brand(ctx.principal, record["brand"])
        return dry_run_mode(rule, spec["topic"], spec.get("payload"), ctx.services.refs)
    event = _event(ctx, params)
    refs = ctx.services.refs
    _require_event_brand(ctx.principal, refs.brand_of(event))
    return dry_run(rule, event, refs)
