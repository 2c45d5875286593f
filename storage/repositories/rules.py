"""Workflow rules (the API's WorkflowRuleRecord) with optimistic versioning."""

from __future__ import annotations

from collections.abc import Collection

from brokerflow.errors import Conflict, NotFound
from brokerflow.storage.repositories.base import Repository, is_int
from brokerflow.workflow.catalog import DEFAULT_PRIORITY

# The fields a caller sets; id, version and the audit fields are the store's.
RULE_FIELDS = (
    "name", "brand", "trigger", "status", "priority", "conditions", "actions",
    "schedule", "run_as", "exec_roles", "cooldown",
)
DEFAULTS = {"status": "active", "priority": DEFAULT_PRIORITY, "conditions": [], "actions": []}
ARCHIVED = "archived"


def _not_found(rule_id: object) -> NotFound:
    return NotFound(f"rule {rule_id} not found", details=[{"path": "id", "message": "no such rule"}])


def _values(rule: dict, base: dict) -> dict:
    """The stored fields: those present in ``rule`` replace ``base``'s; defaults fill gaps."""
    values = {}
    for field in RULE_FIELDS:
        value = rule[field] if field in rule else base.get(field)
        values[field] = DEFAULTS.get(field) if value is None and field in DEFAULTS else value
    return values


class RuleRepository(Repository):
    def _row_dict(self, row) -> dict:
        return {
            "id": row.id, "name": row.name, "brand": row.brand, "trigger": row.trigger,
            "status": row.status, "priority": row.priority, "conditions": row.conditions,
            "actions": row.actions, "version": row.version, "schedule": row.schedule,
            "run_as": row.run_as, "exec_roles": row.exec_roles, "cooldown": row.cooldown,
            "created_at": row.created_at,
            "updated_at": row.updated_at, "created_by": row.created_by, "updated_by": row.updated_by,
        }

    def _get(self, rule_id: object) -> dict:
        row = self._m.Rule.get_or_none(self._m.Rule.id == rule_id) if is_int(rule_id) else None
        if row is None:
            raise _not_found(rule_id)
        return self._row_dict(row)

    def add(self, rule: dict, by: str | None = None) -> dict:
        """Store a new rule: id assigned, version 1; ``rule``'s own id/version are ignored."""
        now = self._clock()
        by = None if by is None else str(by)
        with self._write():
            rule_id = self._m.Rule.insert(
                **_values(rule, DEFAULTS), version=1, created_at=now, updated_at=now,
                created_by=by, updated_by=by,
            ).execute()
            return self._get(rule_id)

    def update(self, rule_id: int, version: int, rule: dict, by: str | None = None) -> dict:
        """Replace the fields present in ``rule``; version + 1. Conflict when ``version`` is stale."""
        model = self._m.Rule
        with self._write():
            current = self._get(rule_id)
            if current["version"] != version:
                raise _stale(rule_id, version, current["version"])
            changed = model.update(
                **_values(rule, current), version=model.version + 1, updated_at=self._clock(),
                updated_by=None if by is None else str(by),
            ).where(model.id == rule_id, model.version == version).execute()
            if not changed:  # PostgreSQL: another writer committed between our read and write
                raise _stale(rule_id, version, None)
            return self._get(rule_id)

    def archive(self, rule_id: int, by: str | None = None) -> dict:
        """Status ``archived`` (it never fires again), version + 1."""
        model = self._m.Rule
        with self._write():
            changed = model.update(
                status=ARCHIVED, version=model.version + 1, updated_at=self._clock(),
                updated_by=None if by is None else str(by),
            ).where(model.id == rule_id).execute() if is_int(rule_id) else 0
            if not changed:
                raise _not_found(rule_id)
            return self._get(rule_id)

    def delete(self, rule_id: int) -> None:
        model = self._m.Rule
        with self._write():
            if not is_int(rule_id) or not model.delete().where(model.id == rule_id).execute():
                raise _not_found(rule_id)

    def get(self, rule_id: int) -> dict:
        with self._read():
            return self._get(rule_id)

    def list(
        self,
        brand: str | None = None,
        trigger: str | None = None,
        status: str | None = None,
        brands: Collection[str] | None = None,
    ) -> list[dict]:
        """Rules by id; each filter is equality, ``brands`` an allowed set (brand-scoped tokens)."""
        model = self._m.Rule
        query = model.select().order_by(model.id)
        for column, value in ((model.brand, brand), (model.trigger, trigger), (model.status, status)):
            if value is not None:
                query = query.where(column == value)
        if brands is not None:
            if not brands:
                return []
            query = query.where(model.brand.in_(list(brands)))
        with self._read():
            return [self._row_dict(row) for row in query]


def _stale(rule_id: object, version: object, current: int | None) -> Conflict:
    now = "" if current is None else f"; the current version is {current}"
    return Conflict(
        f"rule {rule_id} was changed by someone else (version {version} is stale{now})",
        details=[{"path": "version", "message": f"stale version {version}{now}"}],
    )
