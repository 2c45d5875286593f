"""Typed reads of command params; a wrong or missing one is ``VALIDATION_FAILED`` with its path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokerflow.errors import ValidationFailed
from brokerflow.workflow.events import INT_MAX, INT_MIN

_NAMES = {int: "an integer", str: "a string", dict: "a map", list: "a list", bool: "a boolean"}

_MISSING = object()


def invalid(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {message}", details=[{"path": path, "message": message}])


def _type_ok(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is dict:
        return isinstance(value, Mapping)
    return isinstance(value, kind)


def get(params: Mapping[str, Any], name: str, kind: type, *, required: bool = False,
        default: Any = None, path: str | None = None) -> Any:
    """``params[name]`` checked to be ``kind``; ``default`` when absent or null and not required."""
    value = params.get(name, _MISSING)
    where = path or name
    if value is _MISSING or value is None:
        if required:
            raise invalid(where, "is required")
        return default
    if not _type_ok(value, kind):
        raise invalid(where, f"must be {_NAMES.get(kind, kind.__name__)}, got {type(value).__name__}")
    if kind is int and not INT_MIN <= value <= INT_MAX:  # SQLite and PostgreSQL overflow past it
        raise invalid(where, "must be an integer from -2**63 to 2**63-1")
    return dict(value) if kind is dict else value


def no_unknown(params: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse params the command does not know: a typo should not silently mean "no filter"."""
    unknown = sorted(str(k) for k in params if k not in allowed)
    if unknown:
        raise ValidationFailed(
            f"unknown params: {', '.join(unknown)}",
            details=[{"path": k, "message": f"unknown param; expected one of {', '.join(allowed)}"}
                     for k in unknown],
        )
