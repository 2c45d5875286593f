"""The cluster's leases, members and changes on a real PostgreSQL (``serve --cluster`` needs it).

Leases are measured by the database's clock, so the tests move time by waiting out short TTLs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from brokerflow.storage import Store, open_store
from tests.conftest import wait_until
from tests.storage.conftest import run_threads


@pytest.fixture
def pg_store(pg_url) -> Iterator[Store]:
    store = open_store(pg_url)
    yield store
    store.close()


def test_of_members_asking_at_once_for_the_same_partitions_each_partition_has_one_winner(pg_store):
    cluster = pg_store.cluster
    won = run_threads(6, lambda i: cluster.acquire(f"m{i}", range(16), 60_000), store=pg_store)
    assert not [w for w in won if isinstance(w, Exception)], won
    owners = [p for w in won for p in w]
    assert sorted(owners) == list(range(16))  # every partition once, nobody twice
    by_db = cluster.owners()
    for index, partitions in enumerate(won):
        assert all(by_db[p] == f"m{index}" for p in partitions)
        assert set(partitions.values()) <= {1}  # a first owner: epoch 1


def test_a_lease_is_renewed_only_by_its_owner_and_taken_by_another_only_once_expired(pg_store):
    cluster = pg_store.cluster
    assert cluster.acquire("a", [1, 2], 400) == {1: 1, 2: 1}
    assert cluster.acquire("b", [1, 2, 3], 60_000) == {3: 1}  # 1 and 2 are a's until they expire
    assert cluster.renew("b", [1, 2], 60_000) == set()
    assert cluster.renew("a", [1], 400) == {1}
    wait_until(lambda: set(cluster.owners()) == {3}, timeout_s=10, interval_s=0.05)
    assert cluster.renew("a", [1, 2], 60_000) == set()  # expired: a stopped and must take it again
    assert cluster.acquire("b", [1, 2], 60_000) == {1: 2, 2: 2}  # a new owner: the epoch moved on
    assert cluster.owners() == {1: "b", 2: "b", 3: "b"}


def test_release_stores_the_final_checkpoints_only_of_leases_still_held_and_frees_them(pg_store):
    cluster, runs = pg_store.cluster, pg_store.runs
    cluster.acquire("a", [0, 1], 60_000)
    cluster.acquire("b", [2], 60_000)
    freed = cluster.release("a", [0, 1, 2], [("mt5", 0, 10), ("mt5", 1, 11), ("mt5", 2, 99)])
    assert freed == {0, 1}
    assert runs.checkpoints([0, 1, 2]) == {"mt5": {0: 10, 1: 11}}  # partition 2 is b's: untouched
    assert cluster.owners() == {2: "b"}


def test_the_run_log_writes_checkpoints_only_for_partitions_whose_lease_the_member_holds(pg_store):
    cluster, runs = pg_store.cluster, pg_store.runs
    cluster.acquire("a", [0], 60_000)
    cluster.acquire("b", [1], 60_000)
    runs.write_rows([], [("mt5", 0, 5), ("mt5", 1, 5)], lease_owner="a")
    assert runs.checkpoints([0, 1]) == {"mt5": {0: 5}}
    runs.write_rows([], [("mt5", 1, 7)], lease_owner="b")
    runs.write_rows([], [("mt5", 0, 6), ("mt5", 1, 3)], lease_owner="a")
    assert runs.checkpoints([0, 1]) == {"mt5": {0: 6, 1: 7}}


def test_members_heartbeat_by_the_database_clock_and_leave_with_their_leases(pg_store):
    cluster = pg_store.cluster
    cluster.heartbeat("a", "tcp://127.0.0.1:1", 11, "h")
    cluster.heartbeat("b", "tcp://127.0.0.1:2", 12, "h")
    assert [m["member"] for m in cluster.members(60_000)] == ["a", "b"]
    assert cluster.members(60_000)[0]["api"] == "tcp://127.0.0.1:1"
    cluster.acquire("a", [0, 1], 60_000)
    assert cluster.leave("a") == 2
    assert [m["member"] for m in cluster.members(60_000)] == ["b"]
    assert cluster.owners() == {}
    wait_until(lambda: cluster.members(200) == [], timeout_s=5, interval_s=0.05)  # b's heartbeat ages past 200 ms


def test_changes_are_read_back_in_order_after_an_id(pg_store):
    cluster = pg_store.cluster
    assert cluster.last_change() == 0
    first = cluster.publish("a", {"change": "rules"})
    second = cluster.publish("b", {"change": "flows", "name": "x"})
    assert cluster.last_change() == second > first
    assert cluster.changes_after(0) == [(first, "a", {"change": "rules"}),
                                        (second, "b", {"change": "flows", "name": "x"})]
    assert cluster.changes_after(first) == [(second, "b", {"change": "flows", "name": "x"})]
    assert cluster.trim_changes(3_600_000) == 0
