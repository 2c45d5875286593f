"""The automation modes (docs/automation.md) as plain data: each mode's context, and the before-hook record.

Every mode feeds the same compiled rules and the same action actors; what differs is what a
rule sees (the context built here) and what happens with the result (the runtime's job).
Contexts are flat maps keyed by catalog field names, like the event context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokerflow.errors import ActionFailed, ValidationFailed
from brokerflow.workflow.context import mapping_context, record_context
from brokerflow.workflow.events import RECORD_SCHEMAS
from brokerflow.workflow.isotime import iso_ms
from brokerflow.workflow.reference import ReferenceData
from brokerflow.workflow.rules.conditions import explain
from brokerflow.workflow.templates import render

HOOK_TOPICS = {"customer": "customer.push", "account": "account.push"}
HOOK_KEYS = {"customer": "id", "account": "login"}
CUSTOMER_ACTION_EXECUTORS = ("customer", "kyc")
_TYPE_NAMES = {"int": "an integer", "number": "a number", "str": "a string", "bool": "true or false"}


# -- before-hooks ---------------------------------------------------------------------------
def hook_trigger(resource: str, operation: str) -> str:
    """``("customer", "create")`` -> ``customer.beforeCreate``."""
    return f"{resource}.before{operation.capitalize()}"


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, bool)


def record_problems(resource: str, operation: str, record: Mapping[str, Any]) -> list[dict[str, str]]:
    """Type problems of a record about to be written (``workflow.events.RECORD_SCHEMAS``).

    The key (customer ``id``, account ``login``) is required for an update only: a record
    being created may not have one yet. ``None`` clears an optional field.
    """
    required, optional = RECORD_SCHEMAS[HOOK_TOPICS[resource]]
    problems = []
    key = HOOK_KEYS[resource]
    if operation == "update" and record.get(key) is None:
        problems.append({"path": f"record.{key}", "message": "is required to update a record"})
    for name, kind in {**required, **optional}.items():
        value = record.get(name)
        if value is not None and not _type_ok(value, kind):
            problems.append({"path": f"record.{name}", "message": f"must be {_TYPE_NAMES[kind]}, got {value!r}"})
    for name in record:
        if not isinstance(name, str) or not name:
            problems.append({"path": "record", "message": f"field names must be strings, got {name!r}"})
    return problems


def check_record(resource: str, operation: str, record: Mapping[str, Any], when: str) -> None:
    problems = record_problems(resource, operation, record)
    if problems:
        listed = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        raise ValidationFailed(f"{resource} record {when} is invalid: {listed}", details=problems)


def hook_brand(resource: str, record: Mapping[str, Any], refs: ReferenceData) -> str | None:
    """Customer: its ``brand`` (else the stored one's); account: ``group`` -> group.brand,
    the group being the record's, else the stored account's."""
    if resource == "customer":
        stored = refs.customers.get(record.get("id")) or {}
        return record.get("brand") or stored.get("brand")
    stored = refs.accounts.get(record.get("login")) or {}
    group = refs.groups.get(record.get("group") or stored.get("group")) or {}
    return group.get("brand")


def stored_record(resource: str, operation: str, record: Mapping[str, Any],
                  refs: ReferenceData) -> Mapping[str, Any] | None:
    """The replica's copy of the record an update is about to overwrite (None for a create)."""
    if operation != "update":
        return None
    table = refs.customers if resource == "customer" else refs.accounts
    return table.get(record.get(HOOK_KEYS[resource]))


def hook_context(resource: str, record: Mapping[str, Any], brand: str | None,
                 stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``customer.*`` or ``account.*`` of the incoming record (as changed by earlier rules); for an
    update, fields the record does not carry are read from the stored one."""
    view = {**stored, **record} if stored else record
    ctx = record_context(resource, view)
    ctx["brand"] = brand
    ctx["_missing"] = {}
    ctx["_customer_id"] = view.get("id") if resource == "customer" else view.get("customer_id")
    return ctx


def set_field_name(resource: str, field: Any) -> str:
    """``record.set``'s field: ``risk_level`` or ``customer.risk_level`` on a customer hook."""
    name = str(field or "").strip()
    prefix = resource + "."
    if name.startswith(prefix):
        name = name[len(prefix):]
    if not name or "." in name:
        raise ValueError(f"record.set field {field!r} is not a field of the {resource} record")
    return name


def apply_results(record: Mapping[str, Any], actions: list[Mapping[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """Fold a run's ``record.set`` results into ``record``; the second value is a rejection
    message when the run rejected the operation."""
    out = dict(record)
    for result in actions:
        if result.get("status") != "success":
            continue
        if result.get("type") == "record.set":
            out[result["field"]] = result.get("value")
        elif result.get("type") == "operation.reject":
            return out, str(result.get("message") or "rejected by a before-hook rule")
    return out, None


# -- manual, sink, e-mail, schedules --------------------------------------------------------
def manual_context(brand: str | None, input: Mapping[str, Any], caller: str) -> dict[str, Any]:  # noqa: A002
    ctx = mapping_context("input", input)
    ctx.update({"brand": brand, "_missing": {}, "_caller": caller})
    return ctx


def email_context(mail: Mapping[str, Any], brand: str | None) -> dict[str, Any]:
    ctx = {f"email.{key}": mail.get(key) for key in ("from", "to", "subject", "body")}
    ctx.update({"brand": brand, "_missing": {}})
    return ctx


def is_sweep(rule: Mapping[str, Any], executors: Mapping[str, str]) -> bool:
    """A scheduled rule sweeps the brand's customers when a condition or an action is about one."""
    for cond in rule.get("conditions") or ():
        if isinstance(cond, Mapping) and str(cond.get("field", "")).startswith("customer."):
            return True
    return any(executors.get(str(a.get("type"))) in CUSTOMER_ACTION_EXECUTORS
               for a in rule.get("actions") or () if isinstance(a, Mapping))


def schedule_context(brand: str | None, due_ms: int) -> dict[str, Any]:
    return {"brand": brand, "_due_at": iso_ms(due_ms), "_missing": {}}


def sweep_contexts(brand: str | None, due_ms: int, refs: ReferenceData) -> list[dict[str, Any]]:
    """One context per customer of ``brand`` in the replica (by id), for a scheduled sweep."""
    base = schedule_context(brand, due_ms)
    out = []
    for customer_id, customer in sorted(list(refs.customers.items()), key=lambda kv: str(kv[0])):
        if customer.get("brand") != brand:
            continue
        ctx = dict(base)
        ctx.update(refs.flat("customer", customer))
        ctx["_customer_id"] = customer_id
        out.append(ctx)
    return out


# -- event.emit and traces ------------------------------------------------------------------
def render_value(value: Any, ctx: Mapping[str, Any]) -> Any:
    """A text that is exactly one ``{{field}}`` takes the field's value with its type (a
    customer id stays an int); other texts are rendered; other values pass unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        name = text[2:-2].strip()
        if name in ctx and not name.startswith("_"):
            return ctx[name]
    return render(value, ctx)


def render_record(record: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key): render_value(value, ctx) for key, value in record.items()}


def trace(conditions: list[dict] | None, ctx: Mapping[str, Any], run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The steps of a run: each condition with its actual value, then each action with its
    result, error and duration (skipped actions say so)."""
    steps: list[dict[str, Any]] = [{"step": "condition", **row} for row in explain(conditions, ctx)]
    for action in run.get("actions") or ():
        detail = {k: v for k, v in action.items() if k not in ("type", "status", "error", "ms")}
        steps.append({"step": "action", "type": action.get("type"), "status": action.get("status"),
                      "result": detail or None, "error": action.get("error"), "ms": action.get("ms", 0.0)})
    return steps


def sink_response(runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The HTTP response of a synchronous sink from its runs, in priority order.

    A failed run makes the request fail (``ActionFailed``: 500 with the run's error); else the
    first ``sink.respond`` wins; no ``sink.respond`` at all is an empty 200 (providers retry
    on anything else).
    """
    for run in runs:
        if run.get("status") == "failed":
            raise ActionFailed(f"sink rule {run.get('rule_id')} failed (run {run.get('id')}): {run.get('error')}")
    for run in runs:
        for action in run.get("actions") or ():
            if action.get("type") == "sink.respond" and action.get("status") == "success":
                return {"status": action.get("http_status") or 200, "headers": dict(action.get("headers") or {}),
                        "body": action.get("body")}
    return {"status": 200, "headers": {}, "body": ""}
