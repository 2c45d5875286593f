"""The partition key: which customer an event belongs to, and which partition that customer is in.

Every piece of mutable state (customer fields, KYC profile, notifications) belongs to one
customer, so the customer is the unit a process owns (PROTOCOL.md section 8). A trade or an
account event names a login: its account's ``customer_id`` when known, else the login itself.
Group, manager and rate pushes belong to no customer (``None``): every process applies them.

``partition_of`` uses CRC-32, never Python's ``hash``: string hashing is salted per process,
and every process (and every machine) must agree where a key lives.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

__all__ = ["partition_key", "partition_of", "pid_key", "owned_partitions", "shard_of"]


def _customer(customer_id: Any) -> str:
    return f"c:{customer_id}"


def _login(login: Any, accounts: Mapping[Any, Mapping[str, Any]]) -> str:
    account = accounts.get(login) if isinstance(login, int) else None
    customer_id = account.get("customer_id") if account is not None else None
    return _customer(customer_id) if customer_id is not None else f"l:{login}"


def partition_key(topic: str, record: Mapping[str, Any], accounts: Mapping[Any, Mapping[str, Any]]) -> str | None:
    """The customer key of an event (``c:<id>`` or ``l:<login>``), or None for shared reference data.

    ``accounts`` is the reference replica's accounts by login, holding every earlier push.
    """
    if topic == "trade.push":
        return _login(record.get("login"), accounts)
    if topic == "account.push":
        if record.get("customer_id") is not None:
            return _customer(record["customer_id"])
        return _login(record.get("login"), accounts)
    if topic == "customer.push":
        return _customer(record.get("id"))
    if topic == "kyc.step.push":
        return _customer(record.get("customer_id"))
    return None


def pid_key(pid: str) -> str:
    """The key of a Workflow Machine process: its pid (see docs/scaling.md for why not its customer)."""
    return f"p:{pid}"


def partition_of(key: str, count: int) -> int:
    """The partition of ``key`` among ``count``: stable across processes, machines and releases."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % count


def shard_of(partition: int, shard_count: int) -> int:
    """The shard of ``shard_count`` (``serve --shards``) that owns ``partition``: every door that
    routes by partition (the API broker, the HTTP gateway's forwarder) asks this one function."""
    return partition % shard_count


def owned_partitions(count: int, shard_index: int, shard_count: int) -> tuple[int, ...]:
    """The partitions shard ``shard_index`` of ``shard_count`` owns: every ``shard_count``-th one."""
    return tuple(p for p in range(count) if shard_of(p, shard_count) == shard_index)
