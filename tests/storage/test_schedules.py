"""Schedule claims: each (rule, due time) is claimed once, also under a race."""

from __future__ import annotations

from brokerflow.storage import open_store
from tests.storage.conftest import run_threads


def test_a_due_time_is_claimed_once(store):
    assert store.schedules.claim(1, 60_000) is True
    assert store.schedules.claim(1, 60_000) is False
    assert store.schedules.claim(1, 120_000) is True
    assert store.schedules.claim(2, 60_000) is True


def test_concurrent_claims_from_threads_give_exactly_one_true(store):
    results = run_threads(6, lambda _i: store.schedules.claim(7, 1_800_000), store)
    assert sorted(results, key=str) == [False] * 5 + [True]


def test_two_engines_on_one_database_claim_once(db_url, store):
    with open_store(db_url) as second:
        engines = [store, second]

        def work(index: int) -> bool:
            try:
                return engines[index].schedules.claim(3, 5_000)
            finally:
                engines[index].close()

        results = run_threads(2, work)
    assert sorted(results) == [False, True]


def test_claims_survive_a_restart(db_url, store):
    store.schedules.claim(1, 60_000)
    with open_store(db_url) as reopened:
        assert reopened.schedules.claim(1, 60_000) is False


def test_prune_forgets_old_claims(store):
    for due in (1_000, 2_000, 3_000):
        store.schedules.claim(1, due)
    assert store.schedules.prune(before_ms=2_500) == 2
    assert store.schedules.claim(1, 3_000) is False
