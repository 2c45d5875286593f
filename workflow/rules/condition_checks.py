"""The condition half of rule validation, apart so operator and value rules change in one place.

A condition's value must suit its field's type and its operator; that table of value kinds is
also what action parameters are checked against, so the kinds and the small type tests live here,
below both ``workflow.action_checks`` and ``workflow.validation``, which import them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from brokerflow.workflow.catalog import ALL_OPS, OPERATORS, FieldSpec, field_spec
from brokerflow.workflow.rules.conditions import GROUP_KINDS, MAX_GROUP_DEPTH
from brokerflow.workflow.rules.regex_guard import regex_problem
from brokerflow.workflow.rules.windows import check_aggregate

if TYPE_CHECKING:
    from brokerflow.workflow.rules.validation import Validation


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a finite float: NaN and infinities compare with nothing and are not JSON."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def listing(items: Any) -> str:
    return ", ".join(sorted(items))


# Type name -> (check, what the message says). Condition values of an "any" field are scalars.
KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "string": (lambda x: isinstance(x, str), "a string"),
    "number": (is_number, "a number"),
    "integer": (is_int, "an integer"),
    "boolean": (lambda x: isinstance(x, bool), "true or false"),
    "map": (lambda x: isinstance(x, Mapping), "a map"),
    "scalar": (lambda x: isinstance(x, (str, bool)) or is_number(x), "a string, number or boolean"),
    "any": (lambda x: True, "any value"),
}
_TEXT_OPS = ("contains", "starts_with", "ends_with")
_ORDER_OPS = (">", ">=", "<", "<=")


def _list_problem(kind: str, op: str, value: Any) -> str | None:
    if not isinstance(value, list):
        return f"must be a list for {op!r}"
    check, what = KINDS["scalar" if kind == "any" else kind]
    bad = next((i for i, item in enumerate(value) if not check(item)), None)
    return None if bad is None else f"element [{bad}] must be {what}, got {value[bad]!r}"


def _regex_problem(value: Any) -> str | None:
    """Refused here, a slow pattern never reaches the engine (``workflow.regex_guard``)."""
    if not isinstance(value, str):
        return "must be a string holding a regular expression"
    return regex_problem(value)


def value_problem(kind: str, op: str, value: Any) -> str | None:
    """Why ``value`` cannot be compared with ``op`` against a field of type ``kind`` (None: it can)."""
    if op in ("in", "not_in"):
        return _list_problem(kind, op, value)
    if op == "matches":
        return _regex_problem(value)
    if op in _TEXT_OPS:
        return None if isinstance(value, str) else f"must be a string for {op!r}"
    if op in _ORDER_OPS and kind == "any":
        ok = isinstance(value, str) or is_number(value)
        return None if ok else f"must be a number or string for {op!r}"
    check, what = KINDS["scalar" if kind == "any" else kind]
    return None if check(value) else f"must be {what} for a {kind} field, got {value!r}"


def _check_field(path: str, name: Any, trigger: str | None, v: Validation) -> FieldSpec | None:
    if not is_text(name):
        v.error(path, "is required: a catalog field name")
        return None
    spec = field_spec(name)
    if spec is None:
        v.error(path, f"unknown field {name!r}")
        return None
    if trigger is not None and trigger not in spec.triggers:
        v.error(path, f"field {name!r} is not provided by trigger {trigger!r}; "
                      f"triggers that provide it: {listing(spec.triggers)}")
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
        v.error(path, "must be a map {field, op, value}, {any: [...]}, {all: [...]} or an aggregate")
        return
    spec = _check_field(f"{path}.field", cond.get("field"), trigger, v)
    _check_op_value(path, cond, spec, v)


def _check_op_value(path: str, cond: Mapping[str, Any], spec: FieldSpec | None, v: Validation,
                    kind: str | None = None) -> None:
    op = _check_op(f"{path}.op", cond.get("op"), spec, v)
    if "value" not in cond:
        v.error(f"{path}.value", "is required")
    elif (spec is not None or kind is not None) and op is not None:
        problem = value_problem(kind or spec.type, op, cond["value"])
        if problem:
            v.error(f"{path}.value", problem)


def _check_group(path: str, kind: str, cond: Mapping[str, Any], trigger: str | None, v: Validation,
                 depth: int) -> None:
    extra = sorted(str(key) for key in cond if key != kind)
    if extra:
        v.error(path, f"a group holds only {kind!r}; unexpected keys: {', '.join(extra)}")
    items = cond[kind]
    if depth > MAX_GROUP_DEPTH:
        v.error(path, f"groups nest at most {MAX_GROUP_DEPTH} deep (a group in a group in a group in a group)")
        return
    if not isinstance(items, list) or not items:
        v.error(f"{path}.{kind}", "must be a non-empty list of conditions")
        return
    for index, item in enumerate(items):
        _check_item(f"{path}.{kind}[{index}]", item, trigger, v, depth)


def _check_item(path: str, item: Any, trigger: str | None, v: Validation, depth: int) -> None:
    kind = next((k for k in GROUP_KINDS if isinstance(item, Mapping) and k in item), None)
    if kind is not None:
        _check_group(path, kind, item, trigger, v, depth + 1)
    elif isinstance(item, Mapping) and "agg" in item:
        check_aggregate(path, item, trigger, v)
        _check_op_value(path, item, None, v, kind="number")
    else:
        _check_condition(path, item, trigger, v)


def check_conditions(conditions: Any, trigger: str | None, v: Validation) -> None:
    if not isinstance(conditions, list):
        v.error("conditions", "must be a list")
        return
    for index, cond in enumerate(conditions):
        _check_item(f"conditions[{index}]", cond, trigger, v, 0)
