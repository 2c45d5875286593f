"""What a rule may say: triggers, condition fields, operators, actions and roles, as plain data.

Validation, the condition compiler, the context builder and the action routing all read these
tables, so adding a field or an action is one entry here. ``definitions()`` is the body of
``MngGetWorkflowDefinitions``: the same tables, shaped for a rule editor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Event triggers: the rule engine's trigger mapping (workflow.triggers turns bus events into these).
TRADE_TRIGGERS = ("trade.opened", "trade.closed", "deposit.created", "withdrawal.created")
ACCOUNT_TRIGGERS = ("account:added", "account:updated", "account:deleted")
CUSTOMER_TRIGGERS = ("customer.created", "customer.updated")
KYC_TRIGGERS = ("kyc.step.approved", "kyc.step.rejected")
DEFAULT_PRIORITY = 100  # a rule without a priority runs after those that have a lower one

EVENT_TRIGGERS = TRADE_TRIGGERS + ACCOUNT_TRIGGERS + CUSTOMER_TRIGGERS + KYC_TRIGGERS

# The automation modes' triggers (docs/automation.md).
CUSTOMER_HOOKS = ("customer.beforeCreate", "customer.beforeUpdate")
ACCOUNT_HOOKS = ("account.beforeCreate", "account.beforeUpdate")
BEFORE_TRIGGERS = CUSTOMER_HOOKS + ACCOUNT_HOOKS
SCHEDULED_TRIGGERS = ("interval", "timestamp")
EMAIL_TRIGGERS = ("email.received", "email.sent")
MODE_TRIGGERS = BEFORE_TRIGGERS + ("manual",) + SCHEDULED_TRIGGERS + ("sink.request",) + EMAIL_TRIGGERS
ALL_TRIGGERS = EVENT_TRIGGERS + MODE_TRIGGERS

# Triggers with no initiating user: the rule must name the manager it acts for (``run_as``).
RUN_AS_TRIGGERS = frozenset(SCHEDULED_TRIGGERS + ("sink.request",))
# Triggers whose account may have no CRM customer: customer/KYC actions can fail at run time.
MAYBE_NO_CUSTOMER_TRIGGERS = frozenset(TRADE_TRIGGERS + ACCOUNT_TRIGGERS)

ROLES = ("SESSION_ADMIN", "SESSION_MANAGER", "SESSION_DEALER", "SESSION_CRM_MANAGER", "SESSION_CRM_ADMIN")

FIELD_TYPES = ("string", "number", "integer", "boolean", "any")
ALL_OPS = (
    "==", "!=", ">", ">=", "<", "<=", "in", "not_in", "contains", "starts_with", "ends_with", "matches",
)
_NUMBER_OPS = ("==", "!=", ">", ">=", "<", "<=", "in", "not_in")
_STRING_OPS = ("==", "!=", "in", "not_in", "contains", "starts_with", "ends_with", "matches")
OPERATORS: dict[str, tuple[str, ...]] = {
    "string": _STRING_OPS,
    "number": _NUMBER_OPS,
    "integer": _NUMBER_OPS,
    "boolean": ("==", "!="),
    "any": ALL_OPS,
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A condition field. A ``prefix`` field (name ends in ``.*``) covers every ``<stem><key>``."""

    name: str
    type: str
    triggers: frozenset[str]
    prefix: bool = False

    @property
    def stem(self) -> str:
        """``request.headers.`` for ``request.headers.*``; the name itself for plain fields."""
        return self.name[:-1] if self.prefix else self.name


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    type: str  # string | integer | map | any
    required: bool


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """An action; ``executor`` names the actor that runs it, ``triggers`` None means any trigger."""

    type: str
    params: tuple[ParamSpec, ...]
    executor: str
    triggers: frozenset[str] | None = None

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


EXECUTORS = ("notifier", "customer", "kyc", "webhook", "email", "inline")

# Where a linked record can be addressed (seed: customer through account.customer_id).
_TRADE_FIELD_TRIGGERS = frozenset(TRADE_TRIGGERS)
_ACCOUNT_FIELD_TRIGGERS = frozenset(TRADE_TRIGGERS + ACCOUNT_TRIGGERS + ACCOUNT_HOOKS)
# Scheduled rules address customers too: a sweep runs once per matching customer of the brand.
_CUSTOMER_FIELD_TRIGGERS = frozenset(
    TRADE_TRIGGERS + ACCOUNT_TRIGGERS + CUSTOMER_TRIGGERS + KYC_TRIGGERS + CUSTOMER_HOOKS + SCHEDULED_TRIGGERS
)
# Customer-changing actions need an existing customer: not before it is created, not without one.
_CUSTOMER_ACTIONS = _CUSTOMER_FIELD_TRIGGERS - {"customer.beforeCreate"}

_FIELD_GROUPS: tuple[tuple[frozenset[str], tuple[tuple[str, str], ...]], ...] = (
    (frozenset(ALL_TRIGGERS), (("brand", "string"),)),
    (_TRADE_FIELD_TRIGGERS, (("amount_usd", "number"),)),
    (_TRADE_FIELD_TRIGGERS, (
        ("trade.order", "integer"), ("trade.login", "integer"), ("trade.cmd", "string"),
        ("trade.volume", "integer"), ("trade.close_price", "number"), ("trade.symbol", "string"),
        ("trade.comment", "string"),
    )),
    (_ACCOUNT_FIELD_TRIGGERS, (
        ("account.login", "integer"), ("account.group", "string"), ("account.name", "string"),
        ("account.email", "string"), ("account.country", "string"), ("account.enable", "boolean"),
        ("account.leverage", "integer"),
    )),
    (_CUSTOMER_FIELD_TRIGGERS, (
        ("customer.id", "integer"), ("customer.brand", "string"), ("customer.country", "string"),
        ("customer.language", "string"), ("customer.email", "string"), ("customer.kyc_status", "string"),
        ("customer.kyc_current_level", "integer"), ("customer.risk_level", "string"),
        ("customer.status", "string"),
    )),
    (frozenset(KYC_TRIGGERS), (
        ("kyc.step_code", "string"), ("kyc.level", "integer"), ("kyc.status", "string"),
    )),
    (frozenset({"sink.request"}), (
        ("request.method", "string"), ("request.route", "string"), ("request.headers.*", "any"),
        ("request.query.*", "any"), ("request.body.*", "any"),
    )),
    (frozenset(EMAIL_TRIGGERS), (
        ("email.from", "string"), ("email.to", "string"), ("email.subject", "string"),
        ("email.body", "string"),
    )),
    (frozenset({"manual"}), (("input.*", "any"),)),
)

FIELDS: dict[str, FieldSpec] = {
    name: FieldSpec(name, kind, triggers, prefix=name.endswith(".*"))
    for triggers, fields in _FIELD_GROUPS
    for name, kind in fields
}
_PREFIX_FIELDS = tuple(spec for spec in FIELDS.values() if spec.prefix)


def field_spec(name: str) -> FieldSpec | None:
    """The spec of a condition field name; ``request.query.page`` resolves to ``request.query.*``."""
    if not isinstance(name, str):
        return None
    spec = FIELDS.get(name)
    if spec is not None and not spec.prefix:
        return spec
    for spec in _PREFIX_FIELDS:
        if name.startswith(spec.stem) and len(name) > len(spec.stem):
            return spec
    return None


_S, _I, _N, _M, _A = "string", "integer", "number", "map", "any"
_HOOKS = frozenset(BEFORE_TRIGGERS)
_SINK = frozenset({"sink.request"})
# Modes that bring outside news in may feed an event into the engine's own input (a KYC
# provider's callback becomes a kyc.step.push); before-hooks and event rules may not.
_EMITTERS = frozenset({"manual", "sink.request", "email.received"} | set(SCHEDULED_TRIGGERS))
# Topics event.emit may feed: not reference data, which is changed by its own commands.
EMIT_TOPICS = ("trade.push", "kyc.step.push")

# (type, executor, allowed triggers or None, ((param, type, required), ...))
_ACTION_TABLE: tuple[tuple[str, str, frozenset[str] | None, tuple[tuple[str, str, bool], ...]], ...] = (
    ("notify.manager", "notifier", None, (("manager_id", _I, False), ("message", _S, True))),
    ("customer.set_risk_level", "customer", _CUSTOMER_ACTIONS, (("risk_level", _S, True),)),
    ("customer.set_status", "customer", _CUSTOMER_ACTIONS, (("status", _S, True),)),
    ("kyc.require_step", "kyc", _CUSTOMER_ACTIONS,
     (("step_code", _S, True), ("level", _I, False), ("reason", _S, False))),
    ("kyc.set_required_level", "kyc", _CUSTOMER_ACTIONS, (("level", _I, True), ("reason", _S, False))),
    ("webhook.send", "webhook", None, (
        ("url", _S, True), ("method", _S, False), ("headers", _M, False), ("body", _S, False),
        ("timeout_ms", _I, False), ("retries", _I, False), ("backoff_s", _N, False), ("secret", _S, False),
    )),
    ("email.send", "email", None, (("to", _S, True), ("subject", _S, True), ("body", _S, False))),
    ("record.set", "inline", _HOOKS, (("field", _S, True), ("value", _A, True))),
    ("operation.reject", "inline", _HOOKS, (("message", _S, True),)),
    ("sink.respond", "inline", _SINK, (("status", _I, False), ("headers", _M, False), ("body", _S, False))),
    ("event.emit", "inline", _EMITTERS, (("topic", _S, True), ("event", _S, False), ("record", _M, True))),
)

ACTIONS: dict[str, ActionSpec] = {
    kind: ActionSpec(kind, tuple(ParamSpec(*p) for p in params), executor, triggers)
    for kind, executor, triggers, params in _ACTION_TABLE
}


# Beyond field comparisons (PROTOCOL section 11; docs/rules.md): the limits a rule editor needs.
RULE_LANGUAGE: dict[str, Any] = {
    "groups": [{"type": "any", "holds": "when one of its items holds"},
               {"type": "all", "holds": "when every one of its items holds"}],
    "group_depth_max": 4,
    "aggregates": {"aggs": ["count", "max", "sum"], "ops": ["==", "!=", ">", ">=", "<", "<="],
                   "keys": ["agg", "field", "window_s", "by", "op", "value"], "window_s_max": 31 * 24 * 3600},
    "cooldown": {"keys": ["key", "seconds"], "seconds_max": 31 * 24 * 3600},
}


def definitions() -> dict[str, Any]:
    """The body of ``MngGetWorkflowDefinitions``: plain lists, sorted, msgpack/JSON-ready; ``language``
    (an extension of the protocol's shape) lists groups, aggregates and cooldowns with their limits."""
    return {
        "triggers": sorted(ALL_TRIGGERS),
        "conditions": [
            {"field": spec.name, "type": spec.type, "ops": list(OPERATORS[spec.type]),
             "triggers": sorted(spec.triggers)}
            for spec in sorted(FIELDS.values(), key=lambda s: s.name)
        ],
        "actions": [
            {"type": spec.type,
             "params": [{"name": p.name, "type": p.type, "required": p.required} for p in spec.params]}
            for spec in sorted(ACTIONS.values(), key=lambda s: s.type)
        ],
        "language": RULE_LANGUAGE,
    }
