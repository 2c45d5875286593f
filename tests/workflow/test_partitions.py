"""The partition key and partition function: pure tables."""

from __future__ import annotations

import subprocess
import sys

import pytest

from brokerflow.workflow.partitions import owned_partitions, partition_key, partition_of, pid_key

ACCOUNTS = {1001: {"login": 1001, "customer_id": 7}, 1002: {"login": 1002}, 1003: {"login": 1003, "customer_id": None}}


@pytest.mark.parametrize(("topic", "record", "key"), [
    ("trade.push", {"login": 1001, "order": 1, "cmd": "OP_BUY"}, "c:7"),
    ("trade.push", {"login": 1002, "order": 1, "cmd": "OP_BUY"}, "l:1002"),
    ("trade.push", {"login": 1003, "order": 1, "cmd": "OP_BUY"}, "l:1003"),
    ("trade.push", {"login": 9999, "order": 1, "cmd": "OP_BUY"}, "l:9999"),
    ("account.push", {"login": 1002, "customer_id": 8}, "c:8"),  # the record's link wins
    ("account.push", {"login": 1001, "customer_id": 9}, "c:9"),  # even over the stored one
    ("account.push", {"login": 1001}, "c:7"),  # the stored account's link
    ("account.push", {"login": 1002}, "l:1002"),
    ("account.push", {"login": 5}, "l:5"),
    ("customer.push", {"id": 7}, "c:7"),
    ("kyc.step.push", {"customer_id": 7, "step_code": "id", "status": "approved"}, "c:7"),
    ("group.push", {"group": "real"}, None),
    ("manager.push", {"id": 3}, None),
    ("rate.push", {"currency": "EUR", "usd": 1.1}, None),
])
def test_partition_key(topic: str, record: dict, key: str | None) -> None:
    assert partition_key(topic, record, ACCOUNTS) == key


def test_a_customer_s_events_share_one_key() -> None:
    keys = {partition_key("trade.push", {"login": 1001}, ACCOUNTS), partition_key("customer.push", {"id": 7}, ACCOUNTS),
            partition_key("kyc.step.push", {"customer_id": 7}, ACCOUNTS),
            partition_key("account.push", {"login": 1001}, ACCOUNTS)}
    assert keys == {"c:7"}


@pytest.mark.parametrize(("key", "count", "partition"), [
    ("c:7", 64, 683988765 % 64), ("c:7", 2, 683988765 % 2), ("l:1002", 1, 0),
])
def test_partition_of_is_crc32(key: str, count: int, partition: int) -> None:
    assert partition_of(key, count) == partition


def test_partition_of_takes_any_text() -> None:
    """A key from hostile input (a lone surrogate) still has a partition."""
    assert 0 <= partition_of("l:\udcff", 64) < 64


def test_partition_of_is_the_same_in_another_process() -> None:
    """Python's str hash is salted per process; the partition must not be."""
    code = ("from brokerflow.workflow.partitions import partition_of;"
            "print([partition_of(f'c:{i}', 64) for i in range(50)])")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345"}).stdout.strip()
    assert other == str([partition_of(f"c:{i}", 64) for i in range(50)])


def test_keys_spread_over_partitions() -> None:
    counts = [0] * 64
    for customer in range(6400):
        counts[partition_of(f"c:{customer}", 64)] += 1
    assert min(counts) > 50 and max(counts) < 150


@pytest.mark.parametrize(("count", "index", "shards", "owned"), [
    (8, 0, 1, (0, 1, 2, 3, 4, 5, 6, 7)), (8, 0, 2, (0, 2, 4, 6)), (8, 1, 2, (1, 3, 5, 7)), (5, 2, 3, (2,)),
])
def test_owned_partitions(count: int, index: int, shards: int, owned: tuple[int, ...]) -> None:
    assert owned_partitions(count, index, shards) == owned


def test_shards_own_every_partition_once() -> None:
    for shards in (1, 2, 3, 4, 8, 16):
        owned = [p for index in range(shards) for p in owned_partitions(64, index, shards)]
        assert sorted(owned) == list(range(64))


def test_pid_key() -> None:
    assert pid_key("ab12") == "p:ab12"
