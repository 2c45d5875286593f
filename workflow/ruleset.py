"""A brand's active rules, compiled once and indexed by trigger for the per-event lookup.

A rule set is rebuilt whenever rules change and then only read: an event costs one dict
lookup by trigger plus one predicate call per rule, already in execution order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from workflow.conditions import Predicate, compile_conditions

DEFAULT_PRIORITY = 100


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

    @classmethod
    def compile(cls, rule: Mapping[str, Any]) -> CompiledRule:
        priority = rule.get("priority")
        return cls(
            id=rule.get("id"),
            version=rule.get("version"),
            name=rule.get("name"),
            brand=rule.get("brand"),
            trigger=rule.get("trigger"),
            priority=priority if isinstance(priority, int) else DEFAULT_PRIORITY,
            predicate=compile_conditions(rule.get("conditions") or []),
            actions=tuple(a for a in rule.get("actions") or () if isinstance(a, Mapping)),
            run_as=rule.get("run_as"),
            rule=dict(rule),
        )


def is_active(rule: Mapping[str, Any]) -> bool:
    """A rule fires only when active; a rule without a status is active (the default)."""
    return rule.get("status", "active") in (None, "active")


def _order(rule: CompiledRule) -> tuple[int, int, Any]:
    """Priority first (lower runs first), then id; int ids before others, never a TypeError."""
    if isinstance(rule.id, int):
        return rule.priority, 0, rule.id
    return rule.priority, 1, str(rule.id)


class RuleSet:
    """Active rules by trigger, each tuple in (priority, id) order."""

    __slots__ = ("_by_trigger", "_count")

    def __init__(self, by_trigger: Mapping[str, tuple[CompiledRule, ...]]) -> None:
        self._by_trigger = dict(by_trigger)
        self._count = sum(len(rules) for rules in self._by_trigger.values())

    @classmethod
    def from_rules(cls, rules: Iterable[Mapping[str, Any]]) -> RuleSet:
        grouped: dict[str, list[CompiledRule]] = defaultdict(list)
        for rule in rules:
            if is_active(rule) and isinstance(rule.get("trigger"), str):
                compiled = CompiledRule.compile(rule)
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

    @property
    def triggers(self) -> frozenset[str]:
        return frozenset(self._by_trigger)

    def __iter__(self) -> Iterator[CompiledRule]:
        for rules in self._by_trigger.values():
            yield from rules

    def __len__(self) -> int:
        return self._count
