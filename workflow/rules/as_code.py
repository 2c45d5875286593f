"""Rules as code: a document of rules keyed by name, and the plan that makes an engine match it.

Pure functions (no I/O): ``brokerflow rules export`` writes ``export_document``, ``rules
apply`` reads a document with ``rules_of_document`` and changes the engine by ``make_plan``.
Rules are identified by ``(brand, name)``; ids, versions and timestamps never appear in a
document, and defaults (status active, priority 100, empty lists) are left out, so an export
reads like what a person would write and applying it back changes nothing.

A document is a map ``{name: rule}`` (the rule's ``brand`` inside); two brands may each have a
rule of one name, in which case the export keys them ``brand/name`` with an explicit ``name``.
A list of rules, each with its ``name``, is accepted too, and either form wrapped as ``{"rules": ...}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from brokerflow.workflow.catalog import DEFAULT_PRIORITY

META_KEYS = frozenset(("id", "version"))
META_PREFIXES = ("created_", "updated_")
DEFAULTS: dict[str, Any] = {"status": "active", "priority": DEFAULT_PRIORITY}
FIRST_KEYS = ("brand", "trigger", "status", "priority", "conditions", "actions")  # the order of an export


class RulesFileError(Exception):
    """A rules document that cannot be applied; ``problems`` are ``"where: what"`` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


def _is_meta(key: str) -> bool:
    return key in META_KEYS or key.startswith(META_PREFIXES)


def canonical(rule: Mapping[str, Any]) -> dict[str, Any]:
    """What a rule is, for comparing and exporting: no ids, versions, timestamps, defaults or empties."""
    out = {}
    for key in (*FIRST_KEYS, *sorted(k for k in rule if k not in FIRST_KEYS)):
        if key not in rule or _is_meta(key):
            continue
        value = rule[key]
        if value is None or value == [] or value == {} or DEFAULTS.get(key, object()) == value:
            continue
        out[key] = value
    return out


def key_of(rule: Mapping[str, Any]) -> tuple[str, str]:
    return (str(rule.get("brand")), str(rule.get("name")))


def export_document(rules: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Non-archived rules as ``{name: rule}``, sorted by name then brand (stable diffs in git)."""
    kept = sorted((r for r in rules if r.get("status") != "archived"), key=lambda r: (str(r.get("name")), key_of(r)))
    names = [str(r.get("name")) for r in kept]
    doc: dict[str, dict[str, Any]] = {}
    for rule in kept:
        body = canonical({k: v for k, v in rule.items() if k != "name"})
        name = str(rule.get("name"))
        if names.count(name) > 1:
            doc[f"{rule.get('brand')}/{name}"] = {"name": name, **body}
        else:
            doc[name] = body
    return doc


def _unwrapped(doc: Any) -> Any:
    """``{"rules": [...]}`` or ``{"rules": {name: rule}}`` is the same document without the wrapper
    (a rule *named* ``rules`` is a map with a ``brand`` or ``trigger`` of its own)."""
    if isinstance(doc, Mapping) and list(doc) == ["rules"]:
        inner = doc["rules"]
        if isinstance(inner, list) or (isinstance(inner, Mapping) and not {"brand", "trigger"} & set(inner)):
            return inner
    return doc


def _entries(doc: Any, source: str) -> list[tuple[str, Any]]:
    if isinstance(doc, Mapping):
        return [(str(key), value) for key, value in doc.items()]
    if isinstance(doc, list):
        return [(f"[{index}]", value) for index, value in enumerate(doc)]
    raise RulesFileError(source, [f"the document must be a map of rules by name (or a list of rules), "
                                  f"got {type(doc).__name__}"])


def rules_of_document(doc: Any, source: str) -> list[dict[str, Any]]:
    """The rules of a document, each with its ``name``; every problem named by its place."""
    rules, problems, seen = [], [], {}
    doc = _unwrapped(doc)
    for where, value in _entries(doc, source):
        if not isinstance(value, Mapping):
            problems.append(f"rule {where}: must be a map, got {type(value).__name__}")
            continue
        rule = dict(value)
        if not isinstance(doc, list):
            rule.setdefault("name", where)
        meta = sorted(k for k in rule if isinstance(k, str) and _is_meta(k))
        if meta:
            problems.append(f"rule {where}: {', '.join(meta)}: ids, versions and timestamps belong to the engine")
        key = key_of(rule)
        if key in seen:
            problems.append(f"rule {where}: duplicate (brand, name) {key!r}, also rule {seen[key]}")
        seen[key] = where
        rules.append(rule)
    if problems:
        raise RulesFileError(source, problems)
    return rules


@dataclass
class Plan:
    """What ``apply`` does; ``update`` pairs the stored rule with the wanted one."""

    create: list[dict[str, Any]] = field(default_factory=list)
    update: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    archive: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.create) + len(self.update) + len(self.archive)

    def summary(self) -> dict[str, list[str]]:
        """``{"create": ["brand/name", ...], "update": ..., "archive": ..., "unchanged": ...}``."""
        def names(rules: Iterable[Mapping[str, Any]]) -> list[str]:
            return ["/".join(key_of(rule)) for rule in rules]

        return {"create": names(self.create), "update": names(wanted for _, wanted in self.update),
                "archive": names(self.archive), "unchanged": names(self.unchanged)}


def update_body(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """``wanted`` whole: a field the stored rule has and the file dropped is sent as its default.

    ``MngUpdateWorkflowRule`` merges a partial rule into the stored one, so a field left out
    would stay as it was, and the next apply would plan the same update again.
    """
    cleared = {key: DEFAULTS.get(key, [] if isinstance(value, list) else None)
               for key, value in canonical(current).items() if key not in wanted}
    return {**cleared, **wanted}


def make_plan(wanted: list[dict[str, Any]], stored: list[dict[str, Any]], prune: bool = False) -> Plan:
    """Create what is missing, update what differs; with ``prune``, archive the rules of the
    document's brands that it lacks. Archived rules are history: they neither match nor get pruned."""
    live = {key_of(rule): rule for rule in stored if rule.get("status") != "archived"}
    plan = Plan()
    for rule in wanted:
        current = live.get(key_of(rule))
        if current is None:
            plan.create.append(rule)
        elif canonical(current) == canonical(rule):
            plan.unchanged.append(rule)
        else:
            plan.update.append((current, rule))
    if prune:
        keys = {key_of(rule) for rule in wanted}
        brands = {brand for brand, _ in keys}
        plan.archive = [rule for key, rule in sorted(live.items()) if key[0] in brands and key not in keys]
    return plan
