"""The action half of rule validation, apart so a new or changed action is checked in one place.

Each action type brings its own parameter rules (URLs, methods, statuses, topics, placeholders,
the triggers it may run on); they grow with the catalog's actions, not with the rest of a rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from brokerflow.workflow.catalog import (
    ACTIONS,
    EMIT_TOPICS,
    MAYBE_NO_CUSTOMER_TRIGGERS,
    ActionSpec,
    ParamSpec,
    field_spec,
)
from brokerflow.workflow.policies.webhook_delivery import param_problems as delivery_param_problems
from brokerflow.workflow.rules.condition_checks import KINDS, is_int, is_text, listing
from brokerflow.workflow.templates import placeholders

if TYPE_CHECKING:
    from brokerflow.workflow.rules.validation import Validation

WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
TIMEOUT_MS_MIN, TIMEOUT_MS_MAX = 1000, 30000
TEXT_PARAMS = ("message", "subject", "body")


def _param_missing(spec: ParamSpec, params: Mapping[str, Any]) -> bool:
    return spec.name not in params or (params[spec.name] is None and spec.type != "any")


def _check_param(path: str, spec: ParamSpec, value: Any, v: Validation) -> None:
    check, what = KINDS[spec.type]
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
    if is_int(value) and value < low:
        v.error(path, f"must be an integer >= {low}, got {value}")


def _check_headers(path: str, headers: Any, v: Validation) -> None:
    if not isinstance(headers, Mapping):
        return
    for name, value in headers.items():
        if not is_text(name) or not isinstance(value, str):
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
    if is_int(timeout_ms) and not TIMEOUT_MS_MIN <= timeout_ms <= TIMEOUT_MS_MAX:
        v.warn(f"{path}.timeout_ms", f"{timeout_ms} will be clamped to {TIMEOUT_MS_MIN}..{TIMEOUT_MS_MAX}")
    for name, problem in delivery_param_problems(params, v.secret_names):
        v.error(f"{path}.{name}", problem)


def _check_sink_respond(path: str, params: Mapping[str, Any], v: Validation) -> None:
    status = params.get("status")
    if is_int(status) and not 100 <= status <= 599:
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
                      f"allowed on: {listing(spec.triggers)}")
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
        v.error(f"{path}.type", f"unknown action type {kind!r}; actions: {listing(ACTIONS)}")
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


def check_actions(actions: Any, trigger: str | None, v: Validation) -> None:
    if not isinstance(actions, list):
        v.error("actions", "must be a list")
        return
    if not actions:
        v.warn("actions", "the rule has no actions: a match only writes the run log")
    for index, action in enumerate(actions):
        _check_action(f"actions[{index}]", action, trigger, v)
