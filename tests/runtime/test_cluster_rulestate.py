"""Rule state follows a partition that changes owner: two ``serve --cluster`` members, one PostgreSQL.

A customer's cooldown fires once on the member that owns the customer; the customer's partition
then moves to the other member, which has been running all along (so the state it loaded at
its start is older than the cooldown): once because the first member stops (SIGTERM: it drains,
stores its rule state and frees its leases), once because it is killed with ``kill -9`` (its
leases expire) after its state was stored. Each time the new owner suppresses the next match
within the cooldown, and an aggregate window's count goes on where the last owner left it.
"""

from __future__ import annotations

import os
import signal
import time

from brokerflow.storage.store import open_store
from brokerflow.workflow.partitions import partition_of
from tests.conftest import wait_until
from tests.relayed import RelayedUpstream
from tests.runtime.test_cluster import (
    Member,
    add_customers,
    customers_of,
    make_token,
    runs_by_event,
    split_between,
    two_members,
)

STREAM = "deposit.created|customer.id|"


def counting_rule(n: int) -> dict:
    """Runs on exactly the ``n``-th deposit of a customer within an hour."""
    return {"name": f"deposit number {n}", "brand": "alpha", "trigger": "deposit.created",
            "conditions": [{"agg": "count", "window_s": 3600, "by": "customer.id", "op": "==", "value": n}],
            "actions": [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}]}


COOLING = {"name": "once an hour", "brand": "alpha", "trigger": "deposit.created",
           "cooldown": {"key": "customer.id", "seconds": 3600},
           "actions": [{"type": "customer.set_risk_level", "params": {"risk_level": "medium"}}]}


def test_a_customers_cooldown_and_window_follow_its_partition_to_the_next_owner(tmp_path, pg_url):
    relayed = RelayedUpstream(str(tmp_path / "journal.db"))
    token = make_token(pg_url)
    store = open_store(pg_url)
    members: list[Member] = []
    seq = 0

    def deposit(customer: int) -> str:
        nonlocal seq
        seq += 1
        relayed.deposit(seq, login=100 + customer)
        return f"mt5:{seq}"

    def entries(customer: int) -> int:
        return sum(1 for key, *_ in store.rule_state.load_window("alpha", STREAM, 1000) if key == f"n:{customer}")

    def runs(member: Member, rule: dict) -> list[str]:
        return sorted(runs_by_event(member, rule["id"]).elements())

    try:
        relayed.wait_subscribed()
        a, b = two_members(pg_url, token, relayed, tmp_path, members)
        [customer] = customers_of(a.owned(), 1)
        partition = partition_of(f"c:{customer}", 64)
        applied = b.cluster()["changes_applied"]
        add_customers(a, [customer])
        cooling = a.call("MngAddWorkflowRule", {"rule": COOLING})["rule"]
        counting = {n: a.call("MngAddWorkflowRule", {"rule": counting_rule(n)})["rule"] for n in (3, 4, 5)}
        # b has the rules (and loaded their state, empty, when they came) before any deposit.
        wait_until(lambda: b.cluster()["changes_applied"] >= applied + 3 + 4, timeout_s=30, interval_s=0.1)

        first = deposit(customer)
        deposit(customer)  # on a: the cooldown suppresses it; the window holds 2
        wait_until(lambda: entries(customer) == 2, timeout_s=30, interval_s=0.1)
        assert runs(a, cooling) == [first]

        # a stops: it drains, stores its rule state, frees its leases; b takes every partition.
        assert a.stop() == 0
        members.remove(a)
        wait_until(lambda: len(b.owned()) == 64, timeout_s=30, interval_s=0.1)
        third = deposit(customer)
        wait_until(lambda: runs(b, counting[3]) == [third], timeout_s=30, interval_s=0.2)
        assert runs(b, cooling) == [first]  # b suppressed the third deposit: a's run cools it down

        # a joins again and takes half back; the customer's partition stays with b.
        a = Member("a", pg_url, token, relayed, tmp_path)
        members.append(a)
        split_between(a, b)
        assert partition in b.owned()
        fourth = deposit(customer)  # on b, after a loaded its state at start
        wait_until(lambda: runs(b, counting[4]) == [fourth], timeout_s=30, interval_s=0.2)
        wait_until(lambda: entries(customer) == 4, timeout_s=30, interval_s=0.1)
        # b's checkpoint past the fourth deposit: a's replay after the kill does not count it again.
        wait_until(lambda: store.runs.checkpoints({partition}).get("mt5", {}).get(partition, 0) >= seq,
                   timeout_s=30, interval_s=0.1)

        os.kill(b.proc.pid, signal.SIGKILL)  # its leases expire; a takes them over
        killed = time.monotonic()
        wait_until(lambda: partition in a.owned(), timeout_s=60, interval_s=0.1)
        print(f"a owned the customer's partition {time.monotonic() - killed:.1f} s after b's kill -9")
        fifth = deposit(customer)
        wait_until(lambda: runs(a, counting[5]) == [fifth], timeout_s=30, interval_s=0.2)
        time.sleep(0.5)  # a wrong run of the other rules would be logged by now
        assert runs(a, counting[4]) == [fourth]  # without b's fourth entry a would count 4 here
        assert runs(a, counting[3]) == [third]
        assert runs(a, cooling) == [first]
    finally:
        for member in members:
            if member.proc.poll() is None and member is not a:
                member.proc.kill()
        codes = [a.stop()] if a in members and a.proc.poll() is None else []
        store.close()
        relayed.close()
    assert codes in ([], [0]), a.log()
