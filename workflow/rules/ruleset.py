"""A brand's active rules, compiled once and indexed by trigger for the per-event lookup.

A rule set is rebuilt whenever rules change and then only read. ``for_trigger`` gives a
trigger's rules in execution order; ``matching`` also indexes them by the values their
``==``/``in``/ordering conditions need, so an event calls only the rules its values can
satisfy (a broker's rule set is mostly narrow rules that almost never match).
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from brokerflow.workflow.catalog import DEFAULT_PRIORITY
from brokerflow.workflow.rules.conditions import (
    IndexKey,
    Predicate,
    compile_conditions,
    condition_fields,
    index_key,
    missing_reason_of,
)
from brokerflow.workflow.rules.cooldown import CooldownSpec, cooldown_of
from brokerflow.workflow.rules.regex_guard import regex_engine, regex_problem
from brokerflow.workflow.rules.windows import StreamPlan, stream_plans

# Stdlib logging only: a stored rule whose pattern is refused is reported where it is compiled.
log = logging.getLogger("brokerflow.rules")



@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One active rule ready to run; ``rule`` is the stored definition it was compiled from."""

    id: Any
    version: int | None
    name: str | None
    brand: str | None
    trigger: str
    priority: int
    predicate: Predicate = field(repr=False, compare=False)
    actions: tuple[dict[str, Any], ...] = ()
    run_as: int | None = None
    rule: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # What the predicate needs of one field (``conditions.index_key``); None: call it always.
    index_key: IndexKey | None = field(default=None, repr=False, compare=False)
    # The fields the conditions read, for saying why a rule was skipped without compiling again.
    fields: tuple[str, ...] = field(default=(), repr=False, compare=False)
    # At most one run per key value per window (``workflow.rules.cooldown``); None: no limit.
    cooldown: CooldownSpec | None = field(default=None, repr=False, compare=False)

    @classmethod
    def compile(cls, rule: Mapping[str, Any]) -> CompiledRule:
        priority = rule.get("priority")
        conditions = rule.get("conditions") or []
        return cls(
            id=rule.get("id"),
            version=rule.get("version"),
            name=rule.get("name"),
            brand=rule.get("brand"),
            trigger=rule.get("trigger"),
            priority=priority if isinstance(priority, int) else DEFAULT_PRIORITY,
            predicate=compile_conditions(conditions),
            actions=tuple(a for a in rule.get("actions") or () if isinstance(a, Mapping)),
            run_as=rule.get("run_as"),
            rule=dict(rule),
            index_key=index_key(conditions),
            fields=condition_fields(conditions),
            cooldown=cooldown_of(rule),
        )

    def missing_reason(self, ctx: Mapping[str, Any]) -> str | None:
        """Why this rule is skipped for ``ctx`` (a field it reads is unknown for a known reason)."""
        return missing_reason_of(self.fields, ctx)


def is_active(rule: Mapping[str, Any]) -> bool:
    """A rule fires only when active; a rule without a status is active (the default)."""
    return rule.get("status", "active") in (None, "active")


def _order(rule: CompiledRule) -> tuple[int, int, Any]:
    """Priority first (lower runs first), then id; int ids before others, never a TypeError."""
    if isinstance(rule.id, int):
        return rule.priority, 0, rule.id
    return rule.priority, 1, str(rule.id)


Outcome = tuple[CompiledRule, str | None]  # (rule, None: run it | why it is logged as skipped)


class Ranked(NamedTuple):
    """A rule with its place in execution order; sorting ranked rules restores that order."""

    position: int
    rule: CompiledRule
    outcome: Outcome  # what matching it yields: (rule, None)


_NONE: tuple[Ranked, ...] = ()


class _ValueIndex(NamedTuple):
    """One field's ``==``/``in``-keyed rules by the exact str or number they can match."""

    field: str
    strings: dict[str, tuple[Ranked, ...]]
    numbers: dict[Any, tuple[Ranked, ...]]
    every: tuple[Ranked, ...]  # all of them: for values of other classes


class _BoundIndex(NamedTuple):
    """One field's rules keyed by one ordering, thresholds ascending; ``below``: the rules
    before the cut hold (``>``, ``>=``), else those from it on."""

    field: str
    cut: Any  # bisect_left or bisect_right
    below: bool
    thresholds: list[Any]
    rules: tuple[Ranked, ...]


class _AffixIndex(NamedTuple):
    """One field's ``starts_with``/``ends_with``-keyed rules and all their affixes."""

    field: str
    test: Any  # str.startswith or str.endswith
    affixes: tuple[str, ...]  # no match among them: none of the rules can hold
    rules: tuple[Ranked, ...]


class _Plan(NamedTuple):
    """One trigger's rules split by what their index keys let an event skip; ``scan``: rules
    without a key, called for every event."""

    rules: tuple[CompiledRule, ...]
    scan: tuple[Ranked, ...]
    values: tuple[_ValueIndex, ...]
    bounds: tuple[_BoundIndex, ...]
    affixes: tuple[_AffixIndex, ...]


# ordering -> (bisection, True: the thresholds below the cut hold | False: those from it on)
_CUTS = {">": (bisect_left, True), ">=": (bisect_right, True), "<": (bisect_right, False), "<=": (bisect_left, False)}
_AFFIX_TESTS = {"starts_with": str.startswith, "ends_with": str.endswith}


def _plan(rules: tuple[CompiledRule, ...]) -> _Plan:
    scan: list[Ranked] = []
    values: dict[str, tuple[dict, dict, list]] = {}
    bounds: dict[tuple[str, str], list[tuple[Any, Ranked]]] = defaultdict(list)
    affixes: dict[tuple[str, str], tuple[set, list]] = {}
    for position, rule in enumerate(rules):
        ranked = Ranked(position, rule, (rule, None))
        key = rule.index_key
        if key is None:
            scan.append(ranked)
        elif key.op == "in":
            strings, numbers, every = values.setdefault(key.field, ({}, {}, []))
            for table, wanted in ((strings, key.wanted[0]), (numbers, key.wanted[1])):
                for value in wanted:
                    table.setdefault(value, []).append(ranked)
            every.append(ranked)
        elif key.op in _CUTS:
            bounds[key.field, key.op].append((key.wanted, ranked))
        else:
            union, group = affixes.setdefault((key.field, key.op), (set(), []))
            union.update(key.wanted)
            group.append(ranked)
    ordered = {k: sorted(g, key=lambda entry: (entry[0], entry[1].position)) for k, g in bounds.items()}
    return _Plan(
        rules, tuple(scan),
        tuple(_ValueIndex(name, {v: tuple(r) for v, r in strings.items()}, {v: tuple(r) for v, r in numbers.items()},
                          tuple(every)) for name, (strings, numbers, every) in values.items()),
        tuple(_BoundIndex(name, *_CUTS[op], [t for t, _ in group], tuple(r for _, r in group))
              for (name, op), group in ordered.items()),
        tuple(_AffixIndex(name, _AFFIX_TESTS[op], tuple(sorted(union)), tuple(group))
              for (name, op), (union, group) in affixes.items()),
    )


def _value_candidates(plan: _Plan, get: Any, found: list[Ranked]) -> None:
    """Add the ``==``/``in``-keyed rules the context's values can satisfy to ``found``."""
    for name, strings, numbers, every in plan.values:
        value = get(name)
        cls = value.__class__
        if cls is str:
            found += strings.get(value, _NONE)
        elif cls is int or cls is float:
            found += numbers.get(value, _NONE)
        elif value is not None and cls is not bool:
            found += every  # a kind the index cannot speak for: the predicates decide


def _bound_candidates(plan: _Plan, get: Any, found: list[Ranked]) -> None:
    """Add the ordering- and affix-keyed rules the context's values can satisfy to ``found``."""
    for name, cut, below, thresholds, ranked in plan.bounds:
        value = get(name)
        cls = value.__class__
        if cls is int or cls is float:
            if value == value:  # NaN satisfies no ordering
                found += ranked[:cut(thresholds, value)] if below else ranked[cut(thresholds, value):]
        elif value is not None and cls is not bool and cls is not str:
            found += ranked
    for name, test, union, ranked in plan.affixes:
        value = get(name)
        if value.__class__ is str:
            if test(value, union):
                found += ranked
        elif isinstance(value, str):
            found += ranked


def _plain(rules: tuple[CompiledRule, ...], ctx: Mapping[str, Any]) -> list[Outcome]:
    """Every rule called in order: what the rule actor's loop does, for contexts with gaps."""
    out: list[Outcome] = []
    for rule in rules:
        if rule.predicate(ctx):
            out.append((rule, None))
        else:
            reason = rule.missing_reason(ctx)
            if reason is not None:
                out.append((rule, reason))
    return out


def _log_refused_patterns(rule: CompiledRule) -> None:
    """A stored ``matches`` pattern the guard refuses never holds; say so, as saving it would have.
    One that runs on RE2 is told too (at INFO): a rule saved before ``workflow.regex_guard``
    existed ran it on ``re``, and RE2 differs at the edges (ASCII ``\\d``/``\\w``/``\\s``, ``$``
    only at the very end).

    Rules saved before ``workflow.regex_guard`` existed may hold a refused pattern: the rule stays
    loaded, that condition is false (as for any uncompilable condition), so the rule never
    fires. The log names the rule and why, never the pattern itself.
    """
    for index, condition in enumerate(rule.rule.get("conditions") or ()):
        if isinstance(condition, Mapping) and condition.get("op") == "matches":
            value = condition.get("value")
            problem = regex_problem(value) if isinstance(value, str) else "is not a string"
            if problem:
                log.warning("rule %r: conditions[%d] never holds, its pattern %s", rule.id, index, problem[:200])
            elif regex_engine(value) == "re2":
                log.info("rule %r: conditions[%d] runs on RE2, in linear time (ASCII \\d \\w \\s; $ only at "
                         "the very end)", rule.id, index)


class RuleSet:
    """Active rules by trigger, each tuple in (priority, id) order."""

    __slots__ = ("_by_trigger", "_count", "_plans", "_streams", "stateful")

    def __init__(self, by_trigger: Mapping[str, tuple[CompiledRule, ...]]) -> None:
        self._by_trigger = dict(by_trigger)
        self._count = sum(len(rules) for rules in self._by_trigger.values())
        self._plans = {trigger: _plan(tuple(rules)) for trigger, rules in self._by_trigger.items()}
        streams = {trigger: stream_plans(trigger, (rule.rule for rule in rules))
                   for trigger, rules in self._by_trigger.items()}
        self._streams = {trigger: plans for trigger, plans in streams.items() if plans}
        # Does any rule keep state (aggregates, cooldowns)? The rule actor's loop asks only then.
        self.stateful = bool(self._streams) or any(rule.cooldown is not None for rule in self)

    def streams_of(self, trigger: str) -> tuple[StreamPlan, ...]:
        """The aggregate streams rules of ``trigger`` read: each event of it feeds them."""
        return self._streams.get(trigger, ())

    def stream_plans(self) -> list[StreamPlan]:
        return [plan for plans in self._streams.values() for plan in plans]

    @classmethod
    def from_rules(cls, rules: Iterable[Mapping[str, Any]]) -> RuleSet:
        grouped: dict[str, list[CompiledRule]] = defaultdict(list)
        for rule in rules:
            if is_active(rule) and isinstance(rule.get("trigger"), str):
                compiled = CompiledRule.compile(rule)
                _log_refused_patterns(compiled)
                grouped[compiled.trigger].append(compiled)
        return cls({trigger: tuple(sorted(group, key=_order)) for trigger, group in grouped.items()})

    @staticmethod
    def by_brand(rules: Iterable[Mapping[str, Any]]) -> dict[str | None, RuleSet]:
        """One rule set per rule brand (active rules only); a rule without a brand keys ``None``."""
        grouped: dict[str | None, list[Mapping[str, Any]]] = defaultdict(list)
        for rule in rules:
            if is_active(rule):
                grouped[rule.get("brand")].append(rule)
        return {brand: RuleSet.from_rules(group) for brand, group in grouped.items()}

    _EMPTY: tuple[CompiledRule, ...] = ()

    def for_trigger(self, trigger: str) -> tuple[CompiledRule, ...]:
        return self._by_trigger.get(trigger, self._EMPTY)

    def matching(self, trigger: str, ctx: Mapping[str, Any]) -> list[Outcome]:
        """What evaluating every rule of ``trigger`` on ``ctx`` in order yields, cheaply.

        ``(rule, None)`` for each rule whose predicate holds (start a run), ``(rule, reason)``
        for each that does not and has ``missing_reason`` (log it as skipped), in execution
        order; rules that neither match nor skip are left out. Rules the index rules out are
        never called. A context with missing values (``_missing``) takes the plain loop, as
        any rule may then be a skipped one. A raising predicate's exception propagates (the
        compiled ones never raise).
        """
        plan = self._plans.get(trigger)
        if plan is None:
            return []
        if ctx.get("_missing"):
            return _plain(plan.rules, ctx)
        hits = [ranked for ranked in plan.scan if ranked.rule.predicate(ctx)]
        found: list[Ranked] = []
        if plan.values:
            _value_candidates(plan, ctx.get, found)
        if plan.bounds or plan.affixes:
            _bound_candidates(plan, ctx.get, found)
        if found:
            hits += [ranked for ranked in found if ranked.rule.predicate(ctx)]
            hits.sort()  # by position: positions are unique, so rules are never compared
        return [ranked.outcome for ranked in hits]

    @property
    def triggers(self) -> frozenset[str]:
        return frozenset(self._by_trigger)

    def __iter__(self) -> Iterator[CompiledRule]:
        for rules in self._by_trigger.values():
            yield from rules

    def __len__(self) -> int:
        return self._count
