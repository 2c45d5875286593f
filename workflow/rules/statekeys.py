"""Which partition a piece of rule state belongs to, so it can follow its partition to a new owner.

Cooldowns and aggregate windows are stored per (rule or stream, key text): the key is the value
of one field of the event (``cooldown.key``, an aggregate's ``by``) as ``windows.key_text`` writes
it. Under ``serve --cluster`` the partition an event runs in is its customer's
(``workflow.partitions.partition_key``), so a key names a partition when its field names the
customer the way the router does:

- ``customer.id``: ``c:<id>``;
- ``trade.login``, ``account.login``: the login's customer (``c:<customer_id>`` of its account in
  the reference replica), else ``l:<login>``, exactly as a trade or account event is keyed.

Any other field (``account.group``, ``trade.symbol``, ``brand``...) spans customers: its state
belongs to no partition (``None``), is counted per process, and stays where it is when
partitions move. A key text that cannot be read back (``r:...``, no value) belongs to none
either. Pure: no storage, no clock; the caller hands the replica's login -> customer links.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from brokerflow.workflow.partitions import partition_of

__all__ = ["CUSTOMER_FIELDS", "LOGIN_FIELDS", "PARTITION_FIELDS", "StateKeys", "key_value", "state_partition"]

CUSTOMER_FIELDS = frozenset({"customer.id"})
LOGIN_FIELDS = frozenset({"trade.login", "account.login"})
PARTITION_FIELDS = CUSTOMER_FIELDS | LOGIN_FIELDS  # the fields whose state can belong to a partition
_NO_VALUE = object()


def key_value(key: str) -> Any:
    """The value ``windows.key_text`` wrote as ``key`` (``n:7`` -> 7, ``s:x`` -> "x"); a sentinel
    (``_NO_VALUE``) for one it cannot be read back from (``r:`` reprs, bad text)."""
    kind, _, text = key.partition(":")
    if kind == "s":
        return text
    if kind == "n":
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return _NO_VALUE
    if kind == "b":
        return {"True": True, "False": False}.get(text, _NO_VALUE)
    return _NO_VALUE


def state_partition(field: str, key: str, customer_of_login: Mapping[Any, Any], partitions: int) -> int | None:
    """The partition whose events write the state of ``field`` = ``key`` (a key text), or None when
    that state belongs to no one partition (a field spanning customers, a value not read back)."""
    if field not in PARTITION_FIELDS:
        return None
    value = key_value(key)
    if value is _NO_VALUE:
        return None
    if field in CUSTOMER_FIELDS:
        return partition_of(f"c:{value}", partitions)
    # As partitions._login: only an int login is looked up in the replica.
    customer_id = customer_of_login.get(value) if value.__class__ is int else None
    return partition_of(f"c:{customer_id}" if customer_id is not None else f"l:{value}", partitions)


class StateKeys:
    """The state keys of ``gained`` partitions: ``selects(field, key)``, memoised per key."""

    def __init__(self, gained: Collection[int], partitions: int, customer_of_login: Mapping[Any, Any]) -> None:
        self.gained, self.partitions, self.customer_of_login = frozenset(gained), partitions, customer_of_login
        self._seen: dict[tuple[str, str], bool] = {}

    def selects(self, field: str, key: str) -> bool:
        """Does the state of ``field`` = ``key`` belong to one of the gained partitions?"""
        entry = (field, key)
        found = self._seen.get(entry)
        if found is None:
            partition = state_partition(field, key, self.customer_of_login, self.partitions)
            found = self._seen[entry] = partition is not None and partition in self.gained
        return found

    def __bool__(self) -> bool:
        return bool(self.gained)
