"""Rule validation: every problem at once, each with the path of the value at fault.

A rule editor shows all problems together, so nothing here stops at the first error. Errors
make a rule unsavable; warnings (unknown params, clamped timeouts, placeholders that will not
render, customer actions that may find no customer) are reported and the rule is still saved.
Everything is read from ``workflow.catalog``; this module adds only the checks themselves.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from croniter import croniter

from brokerflow.errors import ValidationFailed
from workflow.catalog import (
    ACTIONS,
    ALL_OPS,
    ALL_TRIGGERS,
    EMIT_TOPICS,
    MAYBE_NO_CUSTOMER_TRIGGERS,
    OPERATORS,
    ROLES,
    RUN_AS_TRIGGERS,
    ActionSpec,
    FieldSpec,
    ParamSpec,
    field_spec,
)
from workflow.clock import parse_iso_ms
from workflow.templates import placeholders

STATUSES = ("active", "disabled", "archived")
NAME_MAX = 200
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
TIMEOUT_MS_MIN, TIMEOUT_MS_MAX = 1000, 30000
TEXT_PARAMS = ("message", "subject", "body")

_DEFAULTS: dict[str, Any] = {
    "status": "active", "priority": 100, "conditions": [], "actions": [],
    "exec_roles": [], "run_as": None, "schedule": None,
}
_RULE_KEYS = frozenset(("name", "brand", "trigger", "id", "version", *_DEFAULTS))
_KEPT_PREFIXES = ("created_", "updated_")


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass(slots=True)
class Validation:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def error(self, path: str, message: str) -> None:
        self.errors.append(Problem(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Problem(path, message))

    def as_dict(self) -> dict[str, Any]:
        """The body of ``MngValidateWorkflowRule``."""
        return {
            "valid": self.valid,
            "errors": [p.as_dict() for p in self.errors],
            "warnings": [p.as_dict() for p in self.warnings],
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _kept(key: Any) -> bool:
    return key in _RULE_KEYS or (isinstance(key, str) and key.startswith(_KEPT_PREFIXES))


def _listing(items: Any) -> str:
    return ", ".join(sorted(items))


def normalize_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``rule`` with defaults filled in and unknown keys dropped (ids/timestamps kept)."""
    if not isinstance(rule, Mapping):
        raise ValidationFailed("rule must be a map", details=[{"path": "rule", "message": "must be a map"}])
    out = {key: copy.deepcopy(value) for key, value in rule.items() if _kept(key)}
    for key, default in _DEFAULTS.items():
        if out.get(key) is None:
            out[key] = copy.deepcopy(default)
    return out


def _check_header(rule: Mapping[str, Any], v: Validation) -> str | None:
    """Check name, brand, trigger, status, priority; return the trigger when it is a known one."""
    name = rule.get("name")
    if not _is_text(name):
        v.error("name", "is required: a non-empty string")
    elif len(name) > NAME_MAX:
        v.error("name", f"must be at most {NAME_MAX} characters, got {len(name)}")
    if not _is_text(rule.get("brand")):
        v.error("brand", "is required: a non-empty string")
    if rule.get("status") not in STATUSES:
        v.error("status", f"must be one of {', '.join(STATUSES)}, got {rule.get('status')!r}")
    if not _is_int(rule.get("priority")):
        v.error("priority", f"must be an integer, got {rule.get('priority')!r}")
    trigger = rule.get("trigger")
    if trigger is None:
        v.error("trigger", "is required")
    elif trigger not in ALL_TRIGGERS:
        v.error("trigger", f"unknown trigger {trigger!r}; known triggers: {_listing(ALL_TRIGGERS)}")
    else:
        return trigger
    return None


# Type name -> (check, what the message says). Condition values of an "any" field are scalars.
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "string": (lambda x: isinstance(x, str), "a string"),
    "number": (_is_number, "a number"),
    "integer": (_is_int, "an integer"),
    "boolean": (lambda x: isinstance(x, bool), "true or false"),
    "map": (lambda x: isinstance(x, Mapping), "a map"),
    "scalar": (lambda x: isinstance(x, (str, bool)) or _is_number(x), "a string, number or boolean"),
    "any": (lambda x: True, "any value"),
}
_TEXT_OPS = ("contains", "starts_with", "ends_with")
_ORDER_OPS = (">", ">=", "<", "<=")


def _list_problem(kind: str, op: str, value: Any) -> str | None:
    if not isinstance(value, list):
        return f"must be a list for {op!r}"
    check, what = _KINDS["scalar" if kind == "any" else kind]
    bad = next((i for i, item in enumerate(value) if not check(item)), None)
    return None if bad is None else f"element [{bad}] must be {what}, got {value[bad]!r}"


def _regex_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string holding a regular expression"
    try:
        re.compile(value)
    except re.error as exc:
        return f"is not a valid regular expression: {exc}"
    return None


def value_problem(kind: str, op: str, value: Any) -> str | None:
    """Why ``value`` cannot be compared with ``op`` against a field of type ``kind`` (None: it can)."""
    if op in ("in", "not_in"):
        return _list_problem(kind, op, value)
    if op == "matches":
        return _regex_problem(value)
    if op in _TEXT_OPS:
        return None if isinstance(value, str) else f"must be a string for {op!r}"
    if op in _ORDER_OPS and kind == "any":
        ok = isinstance(value, str) or _is_number(value)
        return None if ok else f"must be a number or string for {op!r}"
    check, what = _KINDS["scalar" if kind == "any" else kind]
    return None if check(value) else f"must be {what} for a {kind} field, got {value!r}"


def _check_field(path: str, name: Any, trigger: str | None, v: Validation) -> FieldSpec | None:
    if not _is_text(name):
        v.error(path, "is required: a catalog field name")
        return None
    spec = field_spec(name)
    if spec is None:
        v.error(path, f"unknown field {name!r}")
        return None
    if trigger is not None and trigger not in spec.triggers:
        v.error(path, f"field {name!r} is not provided by trigger {trigger!r}; "
                      f"triggers that provide it: {_listing(spec.triggers)}")
    return spec


def _check_op(path: str, op: Any, spec: FieldSpec | None, v: Validation) -> str | None:
    if op not in ALL_OPS:
        v.error(path, f"unknown operator {op!r}; operators: {' '.join(ALL_OPS)}")
        return None
    if spec is not None and op not in OPERATORS[spec.type]:
        v.error(path, f"operator {op!r} is not valid for {spec.type} field {spec.name!r}; "
                      f"allowed: {' '.join(OPERATORS[spec.type])}")
        return None
    return op


def _check_condition(path: str, cond: Any, trigger: str | None, v: Validation) -> None:
    if not isinstance(cond, Mapping):
        v.error(path, "must be a map {field, op, value}")
        return
    spec = _check_field(f"{path}.field", cond.get("field"), trigger, v)
    op = _check_op(f"{path}.op", cond.get("op"), spec, v)
    if "value" not in cond:
        v.error(f"{path}.value", "is required")
    elif spec is not None and op is not None:
        problem = value_problem(spec.type, op, cond["value"])
        if problem:
            v.error(f"{path}.value", problem)


def _check_conditions(conditions: Any, trigger: str | None, v: Validation) -> None:
    if not isinstance(conditions, list):
        v.error("conditions", "must be a list")
        return
    for index, cond in enumerate(conditions):
        _check_condition(f"conditions[{index}]", cond, trigger, v)


def _param_missing(spec: ParamSpec, params: Mapping[str, Any]) -> bool:
    return spec.name not in params or (params[spec.name] is None and spec.type != "any")


def _check_param(path: str, spec: ParamSpec, value: Any, v: Validation) -> None:
    check, what = _KINDS[spec.type]
    if not check(value):
        v.error(path, f"must be {what}, got {value!r}")
    elif spec.required and spec.type == "string" and not value.strip():
        v.error(path, "must not be empty")


def _check_params(path: str, spec: ActionSpec, params: Mapping[str, Any], v: Validation) -> None:
    for param in spec.params:
        if _param_missing(param, params):
            if param.required:
                v.error(f"{path}.{param.name}", "required parameter is missing")
            continue
        _check_param(f"{path}.{param.name}", param, params[param.name], v)
    for name in params:
        if spec.param(name) is None:
            v.warn(f"{path}.{name}", f"unknown parameter of {spec.type}, ignored")


def _min_int(path: str, value: Any, low: int, v: Validation) -> None:
    if _is_int(value) and value < low:
        v.error(path, f"must be an integer >= {low}, got {value}")


def _check_headers(path: str, headers: Any, v: Validation) -> None:
    if not isinstance(headers, Mapping):
        return
    for name, value in headers.items():
        if not _is_text(name) or not isinstance(value, str):
            v.error(f"{path}.{name}", "headers must map non-empty string names to string values")


def _check_url(path: str, url: Any, v: Validation) -> None:
    if not isinstance(url, str) or not url.strip():
        return
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        v.error(path, f"is not a valid URL: {exc}")
        return
    if parts.scheme not in ("http", "https") or not host:
        v.error(path, "must be an absolute http:// or https:// URL with a host")


def _check_webhook(path: str, params: Mapping[str, Any], v: Validation) -> None:
    _check_url(f"{path}.url", params.get("url"), v)
    method = params.get("method")
    if isinstance(method, str) and method not in WEBHOOK_METHODS:
        v.error(f"{path}.method", f"must be one of {' '.join(WEBHOOK_METHODS)}, got {method!r}")
    _check_headers(f"{path}.headers", params.get("headers"), v)
    timeout_ms = params.get("timeout_ms")
    if _is_int(timeout_ms) and not TIMEOUT_MS_MIN <= timeout_ms <= TIMEOUT_MS_MAX:
        v.warn(f"{path}.timeout_ms", f"{timeout_ms} will be clamped to {TIMEOUT_MS_MIN}..{TIMEOUT_MS_MAX}")


def _check_sink_respond(path: str, params: Mapping[str, Any], v: Validation) -> None:
    status = params.get("status")
    if _is_int(status) and not 100 <= status <= 599:
        v.error(f"{path}.status", f"must be an HTTP status 100..599, got {status}")
    _check_headers(f"{path}.headers", params.get("headers"), v)


def _check_emit(path: str, params: Mapping[str, Any], v: Validation) -> None:
    topic = params.get("topic")
    if isinstance(topic, str) and topic not in EMIT_TOPICS:
        v.error(f"{path}.topic", f"must be one of {', '.join(EMIT_TOPICS)}, got {topic!r}")


_ACTION_CHECKS: dict[str, Callable[[str, Mapping[str, Any], Validation], None]] = {
    "notify.manager": lambda path, p, v: _min_int(f"{path}.manager_id", p.get("manager_id"), 0, v),
    "kyc.require_step": lambda path, p, v: _min_int(f"{path}.level", p.get("level"), 0, v),
    "kyc.set_required_level": lambda path, p, v: _min_int(f"{path}.level", p.get("level"), 0, v),
    "webhook.send": _check_webhook,
    "sink.respond": _check_sink_respond,
    "event.emit": _check_emit,
}


def _check_placeholders(path: str, params: Mapping[str, Any], trigger: str | None, v: Validation) -> None:
    for name in TEXT_PARAMS:
        text = params.get(name)
        if not isinstance(text, str):
            continue
        for field_name in placeholders(text):
            spec = field_spec(field_name)
            if spec is None:
                v.warn(f"{path}.{name}", f"{{{{{field_name}}}}} names no catalog field; it is sent verbatim")
            elif trigger is not None and trigger not in spec.triggers:
                v.warn(f"{path}.{name}", f"{{{{{field_name}}}}} is not provided by trigger {trigger!r}; "
                                         "it is sent verbatim")


def _check_action_trigger(path: str, spec: ActionSpec, trigger: str, v: Validation) -> None:
    if spec.triggers is not None and trigger not in spec.triggers:
        v.error(path, f"action {spec.type!r} is not allowed on trigger {trigger!r}; "
                      f"allowed on: {_listing(spec.triggers)}")
    elif spec.executor in ("customer", "kyc") and trigger in MAYBE_NO_CUSTOMER_TRIGGERS:
        v.warn(path, f"the account of a {trigger!r} event may have no linked customer; "
                     f"{spec.type} then cannot run and the run fails")


def _check_action(path: str, action: Any, trigger: str | None, v: Validation) -> None:
    if not isinstance(action, Mapping):
        v.error(path, "must be a map {type, params}")
        return
    kind = action.get("type")
    spec = ACTIONS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        v.error(f"{path}.type", f"unknown action type {kind!r}; actions: {_listing(ACTIONS)}")
        return
    if trigger is not None:
        _check_action_trigger(f"{path}.type", spec, trigger, v)
    params = action.get("params")
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        v.error(f"{path}.params", "must be a map")
        return
    _check_params(f"{path}.params", spec, params, v)
    extra = _ACTION_CHECKS.get(spec.type)
    if extra is not None:
        extra(f"{path}.params", params, v)
    _check_placeholders(f"{path}.params", params, trigger, v)


def _check_actions(actions: Any, trigger: str | None, v: Validation) -> None:
    if not isinstance(actions, list):
        v.error("actions", "must be a list")
        return
    if not actions:
        v.warn("actions", "the rule has no actions: a match only writes the run log")
    for index, action in enumerate(actions):
        _check_action(f"actions[{index}]", action, trigger, v)


def _cron_problem(cron: Any) -> str | None:
    if not isinstance(cron, str) or len(cron.split()) != 5:
        return "must be a 5-field cron expression (minute hour day month weekday)"
    return None if croniter.is_valid(cron) else f"is not a valid cron expression: {cron!r}"


def _at_problem(at: Any) -> str | None:
    try:
        parse_iso_ms(at)
    except ValueError:
        return "must be an ISO-8601 date-time with a time zone (Z or +hh:mm)"
    return None


_SCHEDULES: dict[str, tuple[str, Callable[[Any], str | None]]] = {
    "interval": ("cron", _cron_problem),
    "timestamp": ("at", _at_problem),
}


def _check_schedule(schedule: Any, trigger: str | None, v: Validation) -> None:
    if trigger not in _SCHEDULES:
        if schedule is not None and trigger is not None:
            v.warn("schedule", f"only interval and timestamp rules use a schedule; ignored for {trigger!r}")
        return
    key, problem_of = _SCHEDULES[trigger]
    if not isinstance(schedule, Mapping):
        v.error("schedule", f"is required for trigger {trigger!r}: {{{key!r}: ...}}")
        return
    if key not in schedule:
        v.error(f"schedule.{key}", f"is required for trigger {trigger!r}")
        return
    problem = problem_of(schedule[key])
    if problem:
        v.error(f"schedule.{key}", problem)


def _check_run_as(run_as: Any, trigger: str | None, v: Validation) -> None:
    if run_as is None:
        if trigger in RUN_AS_TRIGGERS:
            v.error("run_as", f"is required for trigger {trigger!r}: the id of the manager the run acts for")
    elif not _is_int(run_as) or run_as < 1:
        v.error("run_as", f"must be a manager id (a positive integer), got {run_as!r}")


def _check_exec_roles(roles: Any, trigger: str | None, v: Validation) -> None:
    if not isinstance(roles, list):
        v.error("exec_roles", "must be a list of role names")
        return
    for index, role in enumerate(roles):
        if role not in ROLES:
            v.error(f"exec_roles[{index}]", f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if roles and trigger is not None and trigger != "manual":
        v.warn("exec_roles", f"only manual rules use exec_roles; ignored for {trigger!r}")


def validate_rule(rule: Any) -> Validation:
    """Every problem of ``rule`` (after normalization), errors and warnings, with paths."""
    v = Validation()
    if not isinstance(rule, Mapping):
        v.error("rule", "must be a map")
        return v
    for key in rule:
        if not _kept(key):
            v.warn(str(key), "unknown rule key, ignored")
    normalized = normalize_rule(rule)
    trigger = _check_header(normalized, v)
    _check_conditions(normalized["conditions"], trigger, v)
    _check_actions(normalized["actions"], trigger, v)
    _check_schedule(normalized["schedule"], trigger, v)
    _check_run_as(normalized["run_as"], trigger, v)
    _check_exec_roles(normalized["exec_roles"], trigger, v)
    return v


def check_rule(rule: Any) -> dict[str, Any]:
    """The normalized rule, or ``ValidationFailed`` whose text and ``details`` list every error."""
    validation = validate_rule(rule)
    if not validation.valid:
        count = len(validation.errors)
        listed = "; ".join(f"{p.path}: {p.message}" for p in validation.errors)
        raise ValidationFailed(
            f"rule is invalid: {count} problem{'' if count == 1 else 's'}: {listed}",
            details=[p.as_dict() for p in validation.errors],
        )
    return normalize_rule(rule)
