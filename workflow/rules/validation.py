"""Rule validation: every problem at once, each with the path of the value at fault.

A rule editor shows all problems together, so nothing here stops at the first error. Errors
make a rule unsavable; warnings (unknown params, clamped timeouts, placeholders that will not
render, customer actions that may find no customer) are reported and the rule is still saved.
Everything is read from ``workflow.catalog``; this module adds only the checks themselves.
Conditions are checked in ``workflow.condition_checks``, actions in ``workflow.action_checks``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from brokerflow.errors import ValidationFailed
from brokerflow.workflow.catalog import ALL_TRIGGERS, DEFAULT_PRIORITY, ROLES, RUN_AS_TRIGGERS
from brokerflow.workflow.events import INT_MAX, INT_MIN
from brokerflow.workflow.isotime import parse_iso_ms
from brokerflow.workflow.rules.action_checks import check_actions
from brokerflow.workflow.rules.condition_checks import check_conditions, is_int, is_text, listing
from brokerflow.workflow.rules.cooldown import check_cooldown

STATUSES = ("active", "disabled", "archived")
NAME_MAX = 200

_DEFAULTS: dict[str, Any] = {
    "status": "active", "priority": DEFAULT_PRIORITY, "conditions": [], "actions": [],
    "exec_roles": [], "run_as": None, "schedule": None, "cooldown": None,
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
    # The webhook signing secrets configured (names); None: not known here, only their form is checked.
    secret_names: Collection[str] | None = None

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


def _kept(key: Any) -> bool:
    return key in _RULE_KEYS or (isinstance(key, str) and key.startswith(_KEPT_PREFIXES))


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
    if not is_text(name):
        v.error("name", "is required: a non-empty string")
    elif len(name) > NAME_MAX:
        v.error("name", f"must be at most {NAME_MAX} characters, got {len(name)}")
    if not is_text(rule.get("brand")):
        v.error("brand", "is required: a non-empty string")
    if rule.get("status") not in STATUSES:
        v.error("status", f"must be one of {', '.join(STATUSES)}, got {rule.get('status')!r}")
    if not is_int(rule.get("priority")):
        v.error("priority", f"must be an integer, got {rule.get('priority')!r}")
    elif not INT_MIN <= rule["priority"] <= INT_MAX:
        v.error("priority", "must be an integer from -2**63 to 2**63-1")
    trigger = rule.get("trigger")
    if trigger is None:
        v.error("trigger", "is required")
    elif trigger not in ALL_TRIGGERS:
        v.error("trigger", f"unknown trigger {trigger!r}; known triggers: {listing(ALL_TRIGGERS)}")
    else:
        return trigger
    return None


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
    elif not is_int(run_as) or not 1 <= run_as <= INT_MAX:
        v.error("run_as", f"must be a manager id (a positive integer), got {repr(run_as)[:40]}")


def _check_exec_roles(roles: Any, trigger: str | None, v: Validation) -> None:
    if not isinstance(roles, list):
        v.error("exec_roles", "must be a list of role names")
        return
    for index, role in enumerate(roles):
        if role not in ROLES:
            v.error(f"exec_roles[{index}]", f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if roles and trigger is not None and trigger != "manual":
        v.warn("exec_roles", f"only manual rules use exec_roles; ignored for {trigger!r}")


def validate_rule(rule: Any, secret_names: Collection[str] | None = None) -> Validation:
    """Every problem of ``rule`` (after normalization), errors and warnings, with paths.

    ``secret_names``: the webhook signing secrets the engine has (a ``secret`` param naming
    another is an error); None when the caller cannot know them.
    """
    v = Validation(secret_names=secret_names)
    if not isinstance(rule, Mapping):
        v.error("rule", "must be a map")
        return v
    for key in rule:
        if not _kept(key):
            v.warn(str(key), "unknown rule key, ignored")
    normalized = normalize_rule(rule)
    trigger = _check_header(normalized, v)
    check_conditions(normalized["conditions"], trigger, v)
    check_actions(normalized["actions"], trigger, v)
    _check_schedule(normalized["schedule"], trigger, v)
    _check_run_as(normalized["run_as"], trigger, v)
    _check_exec_roles(normalized["exec_roles"], trigger, v)
    check_cooldown(normalized["cooldown"], trigger, v)
    return v


def check_rule(rule: Any, secret_names: Collection[str] | None = None) -> dict[str, Any]:
    """The normalized rule, or ``ValidationFailed`` whose text and ``details`` list every error."""
    validation = validate_rule(rule, secret_names)
    if not validation.valid:
        count = len(validation.errors)
        listed = "; ".join(f"{p.path}: {p.message}" for p in validation.errors)
        raise ValidationFailed(
            f"rule is invalid: {count} problem{'' if count == 1 else 's'}: {listed}",
            details=[p.as_dict() for p in validation.errors],
        )
    return normalize_rule(rule)
