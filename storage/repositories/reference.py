"""Reference data (groups, accounts, customers, managers, rates) and KYC step templates.

Each kind is one table: its key column(s), a few indexed columns copied from the record, and
``data``, the whole record as JSON (extra fields kept). Upserts merge: a partial record
changes only the fields it carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import peewee

from brokerflow.errors import ValidationFailed
from brokerflow.storage.repositories.base import Repository, is_int


@dataclass(frozen=True)
class Kind:
    model: str  # the attribute of ``Models``
    key: tuple[str, ...]
    columns: tuple[str, ...]  # indexed copies of record fields, besides the key
    types: Mapping[str, type]  # of the key fields and the columns


KINDS = {
    "group": Kind("Group", ("group",), ("brand",), {"group": str, "brand": str}),
    "account": Kind(
        "Account", ("login",), ("group", "customer_id"), {"login": int, "group": str, "customer_id": int}
    ),
    "customer": Kind("Customer", ("id",), ("brand",), {"id": int, "brand": str}),
    "manager": Kind("Manager", ("id",), ("brand",), {"id": int, "brand": str}),
    "rate": Kind("Rate", ("currency",), (), {"currency": str}),
    "kyc_step_template": Kind(
        "KycStepTemplate",
        ("brand", "step_code"),
        ("level", "required", "active", "title"),
        {"brand": str, "step_code": str, "level": int, "required": bool, "active": bool, "title": str},
    ),
}


# Records per statement: well under SQLite's bound-variable limit with the widest kind.
UPSERT_CHUNK = 200


def _fits(value: object, expected: type) -> bool:
    return is_int(value) if expected is int else isinstance(value, expected)


def _kind(kind: str) -> Kind:
    spec = KINDS.get(kind)
    if spec is None:
        raise ValidationFailed(
            f"unknown reference kind {kind!r}",
            details=[{"path": "kind", "message": f"one of {', '.join(KINDS)}"}],
        )
    return spec


def _check(spec: Kind, record: object) -> dict:
    """The record, if its key is present and its indexed fields have their types."""
    if not isinstance(record, dict):
        raise ValidationFailed("a record must be a map", details=[{"path": "record", "message": "not a map"}])
    problems = []
    for field in spec.key:
        if record.get(field) is None:
            problems.append({"path": f"record.{field}", "message": "required"})
    for field, expected in spec.types.items():
        value = record.get(field)
        if value is not None and not _fits(value, expected):
            problems.append({"path": f"record.{field}", "message": f"must be {expected.__name__}"})
    if problems:
        raise ValidationFailed("invalid record: " + ", ".join(p["path"] for p in problems), details=problems)
    return record


def _key_values(spec: Kind, key: object) -> tuple:
    values = tuple(key) if isinstance(key, (tuple, list)) else (key,)
    if len(values) != len(spec.key):
        raise ValidationFailed(
            f"the key is ({', '.join(spec.key)})", details=[{"path": "key", "message": "wrong arity"}]
        )
    return values


class ReferenceRepository(Repository):
    def _model(self, spec: Kind):
        return getattr(self._m, spec.model)

    def _key_where(self, spec: Kind, values: Iterable[object]) -> list:
        model = self._model(spec)
        return [getattr(model, field) == value for field, value in zip(spec.key, values, strict=True)]

    def _load(self, spec: Kind, values: tuple) -> dict | None:
        if not all(_fits(v, spec.types[f]) for f, v in zip(spec.key, values, strict=True)):
            return None  # a key of the wrong type names nothing
        model = self._model(spec)
        row = model.select(model.data).where(*self._key_where(spec, values)).first()
        return None if row is None else row.data

    def _upsert(self, spec: Kind, record: dict) -> dict:
        model = self._model(spec)
        stored = self._load(spec, tuple(record[field] for field in spec.key))
        merged = {**stored, **record} if stored else dict(record)
        values = {field: merged.get(field) for field in spec.key + spec.columns}
        model.insert(**values, data=merged).on_conflict(
            conflict_target=[getattr(model, field) for field in spec.key],
            preserve=[getattr(model, field) for field in spec.columns + ("data",)],
        ).execute()
        return merged

    def upsert(self, kind: str, record: dict) -> dict:
        """Insert or merge ``record`` into the stored one; returns the merged record."""
        spec = _kind(kind)
        _check(spec, record)
        with self._write():
            return self._upsert(spec, record)

    def upsert_many(self, kind: str, records: Iterable[dict]) -> list[dict]:
        """``upsert`` for a batch, in one transaction, in order (later records merge over earlier).

        The router stores every batch of reference pushes and the customer actor every batch of
        changes this way, so a batch costs one read of the stored records and one multi-row
        upsert, not a read and a write per record.
        """
        spec = _kind(kind)
        records = [_check(spec, record) for record in records]
        if not records:
            return []
        keys = [tuple(record[field] for field in spec.key) for record in records]
        with self._write():
            current = self._load_many(spec, keys)
            merged_records = []
            for key, record in zip(keys, records, strict=True):
                stored = current.get(key)
                merged = current[key] = {**stored, **record} if stored else dict(record)
                merged_records.append(merged)
            model = self._model(spec)
            rows = [{**{field: merged.get(field) for field in spec.key + spec.columns}, "data": merged}
                    for merged in current.values() if merged is not None]
            for start in range(0, len(rows), UPSERT_CHUNK):
                model.insert_many(rows[start:start + UPSERT_CHUNK]).on_conflict(
                    conflict_target=[getattr(model, field) for field in spec.key],
                    preserve=[getattr(model, field) for field in spec.columns + ("data",)],
                ).execute()
        return merged_records

    def upsert_each(self, kind: str, records: Iterable[dict]) -> list[tuple[int, Exception]]:
        """``upsert`` record by record, each in its own transaction; the records that failed.

        The fallback when ``upsert_many`` refused a batch: one record storage cannot take (a
        login past BIGINT, a value JSON cannot encode, a key of the wrong type) must not cost
        the batch's good records. Returns ``(index, error)`` per record not stored, in order.
        A database that is unavailable (locked, connection lost) fails every record alike, so
        after the first such error the rest are reported with it, untried: a batch of 5,000
        must not wait out 5,000 busy timeouts.
        """
        spec = _kind(kind)
        failures: list[tuple[int, Exception]] = []
        unavailable: Exception | None = None
        for index, record in enumerate(records):
            if unavailable is not None:
                failures.append((index, unavailable))
                continue
            try:
                _check(spec, record)
                with self._write():
                    self._upsert(spec, record)
            except (peewee.OperationalError, peewee.InterfaceError) as exc:
                unavailable = exc
                failures.append((index, exc))
            except Exception as exc:  # noqa: BLE001 - this record's own problem; the next one is tried
                failures.append((index, exc))
        return failures

    def _load_many(self, spec: Kind, keys: list[tuple]) -> dict[tuple, dict | None]:
        """The stored record of each distinct key (None where there is none), in first-seen order."""
        found: dict[tuple, dict | None] = dict.fromkeys(keys)
        if len(spec.key) != 1:
            for key in found:
                found[key] = self._load(spec, key)
            return found
        field = spec.key[0]
        wanted = [key[0] for key in found if _fits(key[0], spec.types[field])]
        model = self._model(spec)
        column = getattr(model, field)
        for start in range(0, len(wanted), UPSERT_CHUNK):
            query = model.select(column, model.data).where(column.in_(wanted[start:start + UPSERT_CHUNK]))
            for value, data in query.tuples():
                found[(value,)] = data
        return found

    def get(self, kind: str, key: object) -> dict | None:
        """One record by key (a tuple ``(brand, step_code)`` for templates), or None."""
        spec = _kind(kind)
        with self._read():
            return self._load(spec, _key_values(spec, key))

    def delete(self, kind: str, key: object) -> bool:
        """Remove one record; False when there was none."""
        spec = _kind(kind)
        values = _key_values(spec, key)
        with self._write():
            if self._load(spec, values) is None:
                return False
            model = self._model(spec)
            return bool(model.delete().where(*self._key_where(spec, values)).execute())

    def find(self, kind: str, filters: Mapping[str, object] | None = None) -> list[dict]:
        """Records whose fields equal every filter, in key order.

        Indexed fields narrow the query in SQL; the rest are compared on the JSON record.
        """
        spec = _kind(kind)
        filters = dict(filters or {})
        model = self._model(spec)
        query = model.select(model.data).order_by(*[getattr(model, field) for field in spec.key])
        for field, value in filters.items():
            expected = spec.types.get(field)
            if expected is None or value is None:
                continue
            if not _fits(value, expected):
                return []  # e.g. login "7": no stored record can equal it
            query = query.where(getattr(model, field) == value)
        with self._read():
            records = [row.data for row in query]
        return [r for r in records if all(r.get(f) == v for f, v in filters.items())]

    def all(self, kind: str) -> list[dict]:
        return self.find(kind)
