"""Rule conditions compiled once into plain closures, so evaluating them costs nanoseconds.

A rule's conditions are compiled when the rule set is (re)built, never per event: each
condition becomes a one-argument test of the context value, and the rule's predicate is the
AND of those tests. Evaluation never raises: a missing value (key absent or ``None``) and a
type mismatch (a string compared with a number, a bool with a number) make the condition
false. Numbers compare naturally (``1 == 1.0``); ``bool`` is its own kind, never a number.
A condition that cannot be compiled (unknown operator, bad regex, or a ``matches`` pattern
``workflow.regex_guard`` refuses: one that could backtrack for ever and needs backtracking) is
always false; rule validation reports
those problems when the rule is saved, and ``RuleSet.from_rules`` logs them for stored rules.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from brokerflow.workflow.rules.regex_guard import compile_search

Test = Callable[[Any], bool]
Predicate = Callable[[Mapping[str, Any]], bool]

_NUMBER_TYPES = frozenset({int, float})
_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _is_number(value: Any) -> bool:
    if type(value) in _NUMBER_TYPES:
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_KIND_OF_TYPE = {bool: "bool", int: "number", float: "number", str: "string"}


def _kind(value: Any) -> str:
    """The comparison kind of a value: number, bool, string or the type's name."""
    kind = _KIND_OF_TYPE.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _never(_actual: Any) -> bool:
    return False


def _kind_test(expected: Any) -> Test:
    """A fast check that an actual value has the same comparison kind as ``expected``."""
    kind = _kind(expected)
    if kind == "number":
        return _is_number
    if kind == "bool":
        return lambda a: a is True or a is False
    if kind == "string":
        return lambda a: isinstance(a, str)
    return lambda a: a is not None and _kind(a) == kind


def _equality(op: str, expected: Any) -> Test:
    if expected is None:
        return _never
    same = _kind_test(expected)
    if op == "==":
        return lambda a: same(a) and a == expected
    return lambda a: same(a) and a != expected


def _ordering(op: str, expected: Any) -> Test:
    kind = _kind(expected)
    if kind not in ("number", "string"):
        return _never
    compare = _COMPARE[op]
    if kind == "string":
        return lambda a: isinstance(a, str) and compare(a, expected)
    numbers = _NUMBER_TYPES
    return lambda a: (type(a) in numbers or _is_number(a)) and compare(a, expected)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return [] if value is None else [value]


def _bucket(values: Iterable[Any]) -> tuple[dict[str, frozenset], dict[str, list]]:
    """Group values by kind: hashable ones in frozensets, the rest in lists."""
    hashable: dict[str, set] = {}
    other: dict[str, list] = {}
    for value in values:
        if value is None:
            continue
        try:
            hashable.setdefault(_kind(value), set()).add(value)
        except TypeError:
            other.setdefault(_kind(value), []).append(value)
    return {k: frozenset(v) for k, v in hashable.items()}, other


def _membership(op: str, expected: Any) -> Test:
    values = _as_list(expected)
    sets, lists = _bucket(values)
    kinds = set(sets) | set(lists)
    empty: frozenset = frozenset()

    def member(actual: Any) -> bool:
        kind = _kind(actual)
        try:
            if actual in sets.get(kind, empty):
                return True
        except TypeError:  # an unhashable actual: compare with the list values below
            pass
        return any(actual == v for v in lists.get(kind, ()))

    if op == "in":
        if set(sets) == {"string"} and not lists:  # the common case: a list of codes
            codes = sets["string"]
            return lambda a: isinstance(a, str) and a in codes
        return lambda a: a is not None and member(a)
    if not values:
        return lambda a: a is not None
    # not_in: an actual of a kind the list never holds is a type mismatch, hence false.
    return lambda a: a is not None and _kind(a) in kinds and not member(a)


def _contains(expected: Any) -> Test:
    if expected is None:
        return _never
    same = _kind_test(expected)
    is_str = isinstance(expected, str)

    def test(actual: Any) -> bool:
        if isinstance(actual, str):
            return is_str and expected in actual
        if isinstance(actual, (list, tuple, set, frozenset)):
            return any(same(item) and item == expected for item in actual)
        return False

    return test


def _affix(op: str, expected: Any) -> Test:
    affixes = tuple(v for v in _as_list(expected) if isinstance(v, str))
    if not affixes:
        return _never
    if op == "starts_with":
        return lambda a: isinstance(a, str) and a.startswith(affixes)
    return lambda a: isinstance(a, str) and a.endswith(affixes)


def _matches(expected: Any) -> Test:
    """A search over the first ``SUBJECT_MAX`` characters, on ``re`` or, for a pattern that
    could backtrack for ever, RE2 (``workflow.regex_guard``); a refused pattern never holds."""
    search = compile_search(expected) if isinstance(expected, str) else None
    if search is None:
        return _never
    return lambda a: isinstance(a, str) and search(a)


def compile_test(op: Any, value: Any) -> Test:
    """One operator and expected value as a test of the actual value; unknown ops never hold."""
    if op in ("==", "!="):
        return _equality(op, value)
    if op in (">", ">=", "<", "<="):
        return _ordering(op, value)
    if op in ("in", "not_in"):
        return _membership(op, value)
    if op == "contains":
        return _contains(value)
    if op in ("starts_with", "ends_with"):
        return _affix(op, value)
    if op == "matches":
        return _matches(value)
    return _never


GROUP_KINDS = ("all", "any")
MAX_GROUP_DEPTH = 4  # a group in a group in a group in a group; deeper ones never hold
AGG_PREFIX = "_agg:"  # the context key an aggregate's value is put under (workflow.rules.windows)


def group_kind(item: Any) -> str | None:
    """``"any"``/``"all"`` for a group item (a map with exactly that one key), else None."""
    if isinstance(item, Mapping) and len(item) == 1:
        kind = next(iter(item))
        if kind in GROUP_KINDS:
            return kind
    return None


def is_aggregate(item: Any) -> bool:
    return isinstance(item, Mapping) and "agg" in item


def agg_slot(item: Mapping[str, Any]) -> str:
    """The context key of an aggregate's value: one per (agg, field, window, by), so rules share it."""
    return f"{AGG_PREFIX}{item.get('agg')}:{item.get('field') or ''}:{item.get('window_s')}:{item.get('by')}"


def _compile_one(condition: Any) -> tuple[str, Test]:
    if is_aggregate(condition):
        return agg_slot(condition), compile_test(condition.get("op"), condition.get("value"))
    if not isinstance(condition, Mapping) or not isinstance(condition.get("field"), str):
        return "", _never
    return condition["field"], compile_test(condition.get("op"), condition.get("value"))


def _always(_ctx: Mapping[str, Any]) -> bool:
    return True


def _never_ctx(_ctx: Mapping[str, Any]) -> bool:
    return False


def _item_predicate(item: Any, depth: int) -> Predicate:
    """One item of a conditions list (a plain condition, an aggregate or a group) as a predicate."""
    kind = group_kind(item)
    if kind is None:
        return _single(*_compile_one(item))
    items = item[kind]
    if depth >= MAX_GROUP_DEPTH or not isinstance(items, list):
        return _never_ctx
    predicates = tuple(_item_predicate(child, depth + 1) for child in items)
    return _all_of(predicates) if kind == "all" else _any_of(predicates)


def _all_of(predicates: tuple[Predicate, ...]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]

    def all_of(ctx: Mapping[str, Any]) -> bool:
        for predicate in predicates:
            if not predicate(ctx):
                return False
        return True

    return all_of


def _any_of(predicates: tuple[Predicate, ...]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]

    def any_of(ctx: Mapping[str, Any]) -> bool:
        for predicate in predicates:
            if predicate(ctx):
                return True
        return False

    return any_of


def compile_conditions(conditions: list[dict] | None) -> Predicate:
    """The AND of ``conditions`` as one predicate over a flat context mapping.

    A list of plain conditions (and aggregates, which read their value from the context like a
    field) compiles to one of the flat shapes below; a list holding a group compiles each item
    to a predicate of its own, nested as the groups are, so an event pays only closure calls.
    """
    items = conditions or ()
    if any(group_kind(c) is not None for c in items):
        return _all_of(tuple(_item_predicate(c, 0) for c in items))
    pairs = tuple(_compile_one(c) for c in items)
    if not pairs:
        return _always
    if len(pairs) == 1:
        return _single(*pairs[0])
    if len(pairs) == 2:
        return _double(pairs[0], pairs[1])
    return _every(pairs)


# One shape per arity: the common one- and two-condition rules skip the loop.
# The except clauses guard against hostile values (a custom __eq__): a run never breaks.
def _single(field: str, test: Test) -> Predicate:
    def single(ctx: Mapping[str, Any]) -> bool:
        try:
            return test(ctx.get(field))
        except Exception:
            return False

    return single


def _double(first: tuple[str, Test], second: tuple[str, Test]) -> Predicate:
    (field1, test1), (field2, test2) = first, second

    def double(ctx: Mapping[str, Any]) -> bool:
        get = ctx.get
        try:
            return test1(get(field1)) and test2(get(field2))
        except Exception:
            return False

    return double


def _every(pairs: tuple[tuple[str, Test], ...]) -> Predicate:
    def every(ctx: Mapping[str, Any]) -> bool:
        get = ctx.get
        try:
            for field, test in pairs:
                if not test(get(field)):
                    return False
        except Exception:
            return False
        return True

    return every


# -- indexing: which values can a rule match at all? -----------------------------------------
# A rule set uses these to call only the rules an event's values can satisfy. Each key is a
# necessary condition of one condition (so of its rule's AND), exact for values whose class is
# plainly str, int or float; the rule set calls every keyed rule for values of other classes.
class IndexKey(NamedTuple):
    """What a condition needs of one field's value, in a form an index tests for many rules at once."""

    field: str
    op: str  # "in" (for == too), an ordering, "starts_with" or "ends_with"
    wanted: Any  # (strings, numbers) | a number | affixes


def _plain_number(value: Any) -> bool:
    return (value.__class__ is int or value.__class__ is float) and value == value  # NaN never indexes


def condition_index_key(condition: Any) -> IndexKey | None:
    """A necessary condition on one field's value that an index can test for many rules at once.

    ``(field, "in", (strings, numbers))`` for ``==``/``in``: only a str in ``strings`` or an
    int/float in ``numbers`` can hold (None, bools and other kinds never do: the type-mismatch
    rule). ``(field, op, number)`` for an ordering against a number: only an int/float on the
    right side of it. ``(field, "starts_with"|"ends_with", affixes)``: only a str with one of
    them. None for other conditions (``matches``, ``contains``, ``!=``, bool or unhashable
    expected values, string orderings).
    """
    if not isinstance(condition, Mapping) or not isinstance(condition.get("field"), str) or "agg" in condition:
        return None
    name, op, value = condition["field"], condition.get("op"), condition.get("value")
    if op in _COMPARE:
        return IndexKey(name, op, value) if _plain_number(value) else None
    if op in ("starts_with", "ends_with"):
        return IndexKey(name, op, tuple(v for v in _as_list(value) if isinstance(v, str)))
    if op == "==":
        values = [value]
    elif op == "in":
        values = _as_list(value)
    else:
        return None
    strings, numbers = set(), set()
    for item in values:
        if item.__class__ is str:
            strings.add(item)
        elif _plain_number(item):
            numbers.add(item)
        elif item is not None:  # None is never equal to anything; other kinds are not indexed
            return None
    return IndexKey(name, "in", (frozenset(strings), frozenset(numbers)))


_KEY_RANK = {"in": 0, ">": 1, ">=": 1, "<": 1, "<=": 1, "starts_with": 2, "ends_with": 2}


def index_key(conditions: Any) -> IndexKey | None:
    """The most selective key of a rule's conditions: ``==``/``in`` before orderings before affixes."""
    keys = [key for key in map(condition_index_key, conditions or ()) if key is not None]
    return min(keys, key=lambda key: _KEY_RANK[key.op]) if keys else None


def _explain_item(item: Any, ctx: Mapping[str, Any], depth: int) -> dict[str, Any]:
    kind = group_kind(item)
    if kind is not None:
        children = item[kind] if isinstance(item[kind], list) and depth < MAX_GROUP_DEPTH else []
        return {"field": None, "op": kind, "value": None, "actual": None,
                "result": _item_predicate(item, depth)(ctx),
                "items": [_explain_item(child, ctx, depth + 1) for child in children]}
    field, _ = _compile_one(item)
    row = {
        "field": field or None,
        "op": item.get("op") if isinstance(item, Mapping) else None,
        "value": item.get("value") if isinstance(item, Mapping) else None,
        "actual": ctx.get(field) if field else None,
        "result": _single(*_compile_one(item))(ctx),
    }
    if is_aggregate(item):
        row["field"] = item.get("field")
        row.update({key: item.get(key) for key in ("agg", "window_s", "by")})
    return row


def explain(conditions: list[dict] | None, ctx: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each condition with the actual context value and its result (for dry runs and traces);
    a group's row holds its items' rows (``items``), an aggregate's ``actual`` is its value."""
    return [_explain_item(condition, ctx, 0) for condition in conditions or ()]


def _fields(items: Any, depth: int) -> Iterator[str]:
    for item in items or ():
        kind = group_kind(item)
        if kind is None:
            field = _compile_one(item)[0]
            if field:
                yield field
        elif depth < MAX_GROUP_DEPTH and isinstance(item[kind], list):
            yield from _fields(item[kind], depth + 1)


def condition_fields(conditions: list[dict] | None) -> tuple[str, ...]:
    """The field each condition reads (those in groups too), in order: computed once per rule."""
    return tuple(_fields(conditions, 0))


def missing_reason_of(fields: tuple[str, ...], ctx: Mapping[str, Any]) -> str | None:
    """Why one of ``fields`` could not be evaluated (unknown for a known reason), else None."""
    reasons = ctx.get("_missing")
    if not reasons:
        return None
    for field in fields:
        if ctx.get(field) is None and reasons.get(field):
            return reasons[field]
    return None


def missing_reason(conditions: list[dict] | None, ctx: Mapping[str, Any]) -> str | None:
    """Why a condition could not be evaluated (its field unknown for a known reason), else None."""
    return missing_reason_of(condition_fields(conditions), ctx) if ctx.get("_missing") else None
