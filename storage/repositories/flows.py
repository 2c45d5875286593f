"""Workflow Machine flow definitions, versioned.

Every save is a new version; ``get(name)`` is the highest. Deleting a flow hides its name
(listing, ``get(name)``) but keeps every version: a running process started on version 3
still loads ``get(name, 3)``. Saving the name again continues the version numbers.
"""

from __future__ import annotations

from peewee import IntegrityError, fn

from brokerflow.errors import Conflict, NotFound
from brokerflow.storage.repositories.base import Repository, invalid, is_int


def _not_found(name: object, version: object = None) -> NotFound:
    which = f"flow {name!r}" + ("" if version is None else f" version {version}")
    return NotFound(f"{which} not found", details=[{"path": "name", "message": "no such flow"}])


def _as_flow(row) -> dict:
    return {**row.definition, "version": row.version}


class FlowRepository(Repository):
    def save(self, flow: dict, by: str | None = None) -> dict:
        """Store ``flow`` (validated by the caller) as the next version of its name."""
        name = flow.get("name") if isinstance(flow, dict) else None
        if not isinstance(name, str) or not name:
            raise invalid("flow.name", "required", "a flow needs a name")
        definition = {key: value for key, value in flow.items() if key != "version"}
        model = self._m.Flow
        try:
            with self._write():
                latest = model.select(fn.MAX(model.version)).where(model.name == name).scalar() or 0
                row = model.create(
                    name=name, version=latest + 1, definition=definition, created_at=self._clock(),
                    created_by=None if by is None else str(by), deleted=False,
                )
        except IntegrityError:  # PostgreSQL: another save of this name took the version
            raise Conflict(
                f"flow {name!r} was saved concurrently; try again",
                details=[{"path": "flow.name", "message": "concurrent save"}],
            ) from None
        return _as_flow(row)

    def get(self, name: str, version: int | None = None) -> dict:
        """The latest live version, or exactly ``version`` (deleted flows included)."""
        model = self._m.Flow
        query = model.select().where(model.name == name)
        if version is None:
            query = query.order_by(model.version.desc()).limit(1)
        elif is_int(version):
            query = query.where(model.version == version)
        else:
            raise _not_found(name, version)
        with self._read():
            row = query.first()
        if row is None or (version is None and row.deleted):
            raise _not_found(name, version)
        return _as_flow(row)

    def list(self) -> list[dict]:
        """The latest version of every live flow, by name."""
        model = self._m.Flow
        latest = model.select(model.name, fn.MAX(model.version).alias("top")).group_by(model.name)
        query = (
            model.select()
            .join(latest, on=(model.name == latest.c.name) & (model.version == latest.c.top))
            .where(model.deleted == False)  # noqa: E712
            .order_by(model.name)
        )
        with self._read():
            return [_as_flow(row) for row in query]

    def delete(self, name: str) -> None:
        """Hide ``name``; NotFound when it is unknown or already deleted."""
        model = self._m.Flow
        with self._write():
            latest = model.select().where(model.name == name).order_by(model.version.desc()).first()
            if latest is None or latest.deleted:
                raise _not_found(name)
            model.update(deleted=True).where(model.name == name).execute()
