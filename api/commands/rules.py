"""Workflow rules: validate, add, update, archive, delete, read, list, and dry-run.

Secrets in rules are write-only (PROTOCOL section 10): every rule a command answers with has
the values of its write-only headers (``Authorization``, ``Cookie``, ``X-Api-Key``, names with
``token`` or ``secret``…) masked as ``***``, dry runs included; an update that sends ``***``
keeps the stored value, and an add that sends it is refused (there is nothing to keep).

Writes are admin-only (the access model, ``api.access``); a brand-scoped token reads and writes
only rules of its brand and may not move a rule to another brand; its dry runs may not reach a
stored account or customer of another brand (the replica's records are merged into what a dry
run shows). Every stored change tells
``services.rules_changed()`` so the rule actors reload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from brokerflow.api.access import ADMIN_ONLY, Principal, require_brand, scope_filter
from brokerflow.api.commands._params import get, invalid, no_unknown
from brokerflow.api.commands._registry import CommandContext, command
from brokerflow.api.commands._render import with_iso_times
from brokerflow.api.envelope import Reply, message
from brokerflow.errors import MalformedEvent, ValidationFailed
from brokerflow.workflow.catalog import BEFORE_TRIGGERS, MODE_TRIGGERS
from brokerflow.workflow.events import parse_event
from brokerflow.workflow.modes.contexts import hook_brand
from brokerflow.workflow.modes.dryrun import dry_run_mode
from brokerflow.workflow.policies.webhook_delivery import keep_masked, mask_actions, mask_rule
from brokerflow.workflow.reference import ReferenceData, stored
from brokerflow.workflow.rules.dryrun import dry_run
from brokerflow.workflow.rules.validation import check_rule, validate_rule

# What a caller may set; the rest (id, version, audit fields) is the store's.
EDITABLE = ("name", "brand", "trigger", "status", "priority", "conditions", "actions",
            "schedule", "run_as", "exec_roles", "cooldown")


def _rule_param(params: dict[str, Any]) -> dict[str, Any]:
    return get(params, "rule", dict, required=True)


def _warnings(rule: dict[str, Any]) -> list[dict[str, str]]:
    return [message(f"{p.path}: {p.message}") for p in validate_rule(rule).warnings]


def shown(rule: dict[str, Any]) -> dict[str, Any]:
    """A stored rule as every reply shows it: ISO times, write-only header values masked."""
    return mask_rule(with_iso_times(rule))


def _secret_names(ctx: CommandContext) -> Any:
    return set(ctx.services.settings.webhook_secrets)


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
    return validate_rule(params["rule"], _secret_names(ctx)).as_dict()


@command("MngAddWorkflowRule", roles=ADMIN_ONLY)
def add(ctx: CommandContext, params: dict[str, Any]) -> Reply:
    raw = _rule_param(params)
    rule = check_rule(raw, _secret_names(ctx))
    rule["actions"] = keep_masked(rule["actions"], [])  # a new rule has no stored secret to keep
    require_brand(ctx.principal, rule["brand"])
    stored = ctx.services.store.rules.add(rule, by=ctx.principal.actor)
    ctx.services.rules_changed()
    return Reply({"rule": shown(stored)}, _warnings(raw))


@command("MngUpdateWorkflowRule", roles=ADMIN_ONLY)
def update(ctx: CommandContext, params: dict[str, Any]) -> Reply:
    rule_id, version = _rule_id(params), get(params, "version", int, required=True)
    changes = _rule_param(params)
    current = visible_rule(ctx, rule_id)
    merged = {**{k: current.get(k) for k in EDITABLE}, **changes}
    rule = check_rule(merged, _secret_names(ctx))
    rule["actions"] = keep_masked(rule["actions"], current.get("actions"))  # "***" keeps what is stored
    require_brand(ctx.principal, rule["brand"])
    stored = ctx.services.store.rules.update(rule_id, version, rule, by=ctx.principal.actor)
    ctx.services.rules_changed()
    return Reply({"rule": shown(stored)}, _warnings(merged))


@command("MngArchiveWorkflowRule", roles=ADMIN_ONLY)
def archive(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    rule_id = _rule_id(params)
    visible_rule(ctx, rule_id)
    stored = ctx.services.store.rules.archive(rule_id, by=ctx.principal.actor)
    ctx.services.rules_changed()
    return {"rule": shown(stored)}


@command("MngDeleteWorkflowRule", roles=ADMIN_ONLY)
def delete(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    rule_id = _rule_id(params)
    visible_rule(ctx, rule_id)
    ctx.services.store.rules.delete(rule_id)
    ctx.services.rules_changed()
    return {}


@command("MngGetWorkflowRule")
def get_rule(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"rule": shown(visible_rule(ctx, _rule_id(params)))}


@command("MngGetWorkflowRules")
def list_rules(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    no_unknown(params, ("brand", "trigger", "status"))
    brand = scope_filter(ctx.principal, get(params, "brand", str))
    rules = ctx.services.store.rules.list(
        brand=brand, trigger=get(params, "trigger", str), status=get(params, "status", str)
    )
    return {"rules": [shown(r) for r in rules]}


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
        rule = check_rule(_rule_param(params), _secret_names(ctx))
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


def _account_brand(refs: ReferenceData, account: Mapping[str, Any]) -> str | None:
    group = stored(refs.groups, account.get("group")) or {}
    return group.get("brand")


def _require_stored_scope(principal: Principal, refs: ReferenceData, logins: Iterable[Any],
                          customer_ids: Iterable[Any]) -> None:
    """Every replica record a dry run would read (merged under the caller's fields, or linked)
    must be of the token's brand; an account whose group is unknown is of no brand, so out of
    scope, as ``MngUpsertAccount`` has it. Records the caller only sends are its own data."""
    for login in logins:
        account = stored(refs.accounts, login)
        if account is not None:
            require_brand(principal, _account_brand(refs, account))
    for customer_id in customer_ids:
        customer = stored(refs.customers, customer_id)
        if customer is not None:
            require_brand(principal, customer.get("brand") or None)


def _require_event_scope(principal: Principal, event: Any, refs: ReferenceData) -> None:
    """The event's brand, and every stored account and customer it reaches, must be in scope."""
    if principal.brand is None:
        return
    links = refs.resolve(event)
    _require_event_brand(principal, links.brand)
    record = event.record
    customers = [record.get("id") if event.topic == "customer.push" else record.get("customer_id")]
    if links.customer is not None:
        customers.append(links.customer.get("id"))
    _require_stored_scope(principal, refs, [record.get("login")] if "login" in record else [], customers)


def _require_hook_scope(principal: Principal, trigger: str, payload: Any, refs: ReferenceData) -> None:
    """A before-hook dry run merges the stored record under the one sent: both must be in scope.

    The dry run reads the payload as the record; a payload wrapped as ``{"record": …}`` is
    checked as well, as it was before (either may be what the caller meant).
    """
    if principal.brand is None or not isinstance(payload, dict):
        return
    _require_hook_record(principal, trigger, payload, refs)
    if isinstance(payload.get("record"), dict):
        _require_hook_record(principal, trigger, payload["record"], refs)


def _require_hook_record(principal: Principal, trigger: str, record: dict[str, Any], refs: ReferenceData) -> None:
    """The record's brand, the brand it resolves to and the stored record under its key, in scope."""
    if isinstance(record.get("brand"), str):
        _require_event_brand(principal, record["brand"])
    if trigger not in BEFORE_TRIGGERS:
        return
    resource = trigger.split(".")[0]
    try:
        _require_event_brand(principal, hook_brand(resource, record, refs))
    except TypeError:  # an unhashable key or group: it resolves to no stored record
        pass
    if resource == "customer":
        _require_stored_scope(principal, refs, [], [record.get("id")])
    else:
        _require_stored_scope(principal, refs, [record.get("login")], [])


@command("MngTestWorkflowRule")
def test_rule(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    rule = _rule_to_test(ctx, params)
    spec = params.get("event")
    refs = ctx.services.refs
    if isinstance(spec, dict) and spec.get("topic") in MODE_TRIGGERS:  # an automation mode: workflow.modes.dryrun
        _require_hook_scope(ctx.principal, spec["topic"], spec.get("payload"), refs)
        return _masked_dry_run(dry_run_mode(rule, spec["topic"], spec.get("payload"), refs))
    event = _event(ctx, params)
    _require_event_scope(ctx.principal, event, refs)
    return _masked_dry_run(dry_run(rule, event, refs, ctx.services.store.rule_state, ctx.services.now_ms()))


def _masked_dry_run(result: dict[str, Any]) -> dict[str, Any]:
    """A dry run shows the actions as they would be sent, write-only header values masked."""
    if isinstance(result.get("actions"), list):
        result["actions"] = mask_actions(result["actions"])
    return result
