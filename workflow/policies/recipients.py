"""Who a ``notify.manager`` reaches: the rule engine's fallback chain, as one pure function.

Seed: if ``manager_id`` is omitted or 0, the linked customer's ``assigned_manager_id`` is
tried, then its ``manager_id``, then every enabled manager of the brand is notified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def manager_id_of(value: Any) -> int | None:
    """A usable manager id: a positive int (or digit string from a JSON editor), else None."""
    if type(value) is int:  # the usual case, answered before the general checks
        return value if value > 0 else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def recipients(manager_id: Any, customer: Mapping[str, Any] | None,
               managers_of_brand: Iterable[Mapping[str, Any]]) -> list[int]:
    """Explicit manager -> customer's assigned manager -> customer's manager -> brand broadcast."""
    explicit = manager_id_of(manager_id)
    if explicit is not None:
        return [explicit]
    if customer is not None:
        for field in ("assigned_manager_id", "manager_id"):
            linked = manager_id_of(customer.get(field))
            if linked is not None:
                return [linked]
    ids = {manager_id_of(m.get("id")) for m in managers_of_brand if m.get("enabled") in (True, None)}
    return sorted(i for i in ids if i is not None)
