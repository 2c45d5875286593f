"""The cluster link's lease bookkeeping against the races a review found: a fence overtaken by a
takeover on its way to the router, a takeover failing after its leases were won, and leases the
database holds for a member that does not run them (real router, real PostgreSQL leases)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from brokerflow.actors.kyc import KycActor
from brokerflow.actors.router import Ownership, RouterActor, RouterCounters
from brokerflow.app.clusterlink import ClusterLink, Membership
from brokerflow.app.partitioning import Partitioning
from brokerflow.storage import open_store
from tests.actors.conftest import now_ms

TTL_MS = 60_000


def link_for(partitioning: Partitioning, leased: set[int], store: Any = None) -> ClusterLink:
    link = ClusterLink()
    link.partitioning, link.member, link.leased, link.ttl_ms = partitioning, "a", set(leased), TTL_MS
    if store is not None:
        link.store = store
    return link


def partitioning_of(ownership: Ownership, tell_router: Any, recovery: Any = lambda: None) -> Partitioning:
    return Partitioning(ownership, None, recovery, tell_router, lambda source, seq: set(), lambda gone: 0,
                        lambda timeout_s: None, lambda pid: 0, member="a")


def test_a_fence_overtaken_by_a_takeover_on_its_way_to_the_router_still_holds(stats, refs, store, pipeline,
                                                                              outbound):
    ownership = Ownership(8, {0, 1, 2, 3})
    kyc = KycActor.start(stats, pipeline, now_ms, refs, store.kyc, outbound)
    router = RouterActor.start(stats, refs, store.reference, lambda brand: None, kyc, RouterCounters(), 3,
                               ownership=ownership)
    try:
        on_its_way: list[Any] = []
        partitioning = partitioning_of(ownership, on_its_way.append)
        link = link_for(partitioning, {0, 1, 2, 3, 4})
        applied: Future = partitioning.gain({4}, {})  # the takeover of 4, still queued for the router
        applied.add_done_callback(lambda _done: link._check_gained(frozenset({4})))
        with link._lock:  # the fence fires first: nothing is owned or leased any more
            link.generation += 1
            link._drop(set(link.leased), "no lease renewal succeeded in time")
        assert ownership.owned == frozenset() and link.leased == set()
        router.tell(on_its_way.pop())  # it carries the owned set from before the fence
        applied.result(timeout=10)
        assert ownership.owned == frozenset()  # given up again before the router's next message
    finally:
        router.stop()


@pytest.fixture
def pg_store(pg_url):
    made = open_store(pg_url)
    yield made
    made.close()


def test_a_takeover_that_fails_after_its_leases_were_won_gives_them_back(pg_store):
    def unreachable() -> None:
        raise ConnectionError("server closed the connection unexpectedly")

    ownership = Ownership(8, {0, 1, 2})
    link = link_for(partitioning_of(ownership, lambda message: None, recovery=unreachable), {0, 1, 2}, pg_store)
    with pytest.raises(ConnectionError):
        link._acquire((3,), link.generation)
    assert link.leased == {0, 1, 2} and ownership.owned == frozenset({0, 1, 2})
    assert 3 not in pg_store.cluster.owners()  # free for whoever takes it next, not renewed here for ever


def test_leases_the_database_holds_for_a_member_that_does_not_run_them_are_given_back(pg_store):
    pg_store.cluster.acquire("a", range(4), TTL_MS)  # 2 and 3: a renewal that committed after the fence
    pg_store.cluster.acquire("b", range(4, 8), TTL_MS)
    link = link_for(partitioning_of(Ownership(8, {0, 1}), lambda message: None), {0, 1}, pg_store)
    link.view = Membership([], pg_store.cluster.owners())
    assert link._release_untracked()
    assert pg_store.cluster.owners() == {0: "a", 1: "a", 4: "b", 5: "b", 6: "b", 7: "b"}
    link.view = Membership([], pg_store.cluster.owners())
    assert not link._release_untracked()
