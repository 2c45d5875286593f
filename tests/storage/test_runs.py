"""The run log: id blocks across threads, the batch write, newest-first pages, counters."""

from __future__ import annotations

import pytest

from brokerflow.errors import ValidationFailed
from tests.storage.conftest import run_threads


def make_run(run_id: int, **changes) -> dict:
    run = {
        "id": run_id, "rule_id": 1, "rule_version": 3, "brand": "alpha", "trigger": "deposit.created",
        "event_id": f"ev-{run_id}", "status": "success",
        "actions": [{"type": "notify.manager", "status": "success", "ms": 2}],
        "started_at": 1_000 + run_id, "finished_at": 1_002 + run_id,
    }
    run.update(changes)
    return run


def test_allocate_ids_hands_out_consecutive_ranges(store):
    assert store.runs.allocate_ids(5) == range(1, 6)
    assert store.runs.allocate_ids(1) == range(6, 7)


@pytest.mark.parametrize("n", [0, -1, 1.5, "3", True])
def test_allocate_ids_wants_a_positive_count(store, n):
    with pytest.raises(ValidationFailed):
        store.runs.allocate_ids(n)


def test_concurrent_allocations_from_four_threads_are_disjoint(store):
    def work(_index: int) -> list[range]:
        return [store.runs.allocate_ids(7) for _ in range(25)]

    results = run_threads(4, work, store)
    ids = [i for ranges in results for block in ranges for i in block]
    assert len(ids) == len(set(ids)) == 4 * 25 * 7


def test_write_many_then_list_gives_the_protocol_shape_newest_first(store):
    ids = store.runs.allocate_ids(3)
    store.runs.write_many([make_run(i) for i in ids])
    runs = store.runs.list()
    assert [run["id"] for run in runs] == [3, 2, 1]
    assert runs[-1] == make_run(1)  # no "error"/"run_as" keys when they are not set


def test_optional_error_and_run_as_are_kept(store):
    store.runs.write_many([make_run(1, status="failed", error="HTTP 500", run_as=7)])
    (run,) = store.runs.list()
    assert (run["error"], run["run_as"], run["status"]) == ("HTTP 500", 7, "failed")


def test_a_retried_batch_is_written_once(store):
    batch = [make_run(i) for i in range(1, 4)]
    store.runs.write_many(batch)
    store.runs.write_many(batch + [make_run(4)])
    assert [run["id"] for run in store.runs.list()] == [4, 3, 2, 1]


def test_a_run_without_id_or_status_is_a_validation_error(store):
    with pytest.raises(ValidationFailed) as info:
        store.runs.write_many([make_run(1), {"status": "success"}])
    assert info.value.details[0]["path"] == "runs[1].id"
    assert store.runs.list() == []  # nothing of the batch was written


def test_write_many_of_nothing_is_fine(store):
    assert store.runs.write_many([]) == 0


def test_list_filters_and_pages_backwards(store):
    store.runs.write_many([
        make_run(i, rule_id=1 + i % 2, brand="alpha" if i <= 6 else "beta",
                 status="skipped" if i % 3 == 0 else "success")
        for i in range(1, 11)
    ])
    ids = lambda **kw: [run["id"] for run in store.runs.list(**kw)]  # noqa: E731
    assert ids(rule_id=1) == [10, 8, 6, 4, 2]
    assert ids(brand="beta") == [10, 9, 8, 7]
    assert ids(status="skipped") == [9, 6, 3]
    assert ids(limit=3) == [10, 9, 8]
    assert ids(limit=3, before_id=8) == [7, 6, 5]
    assert ids(brands={"alpha"}, limit=2) == [6, 5]
    assert ids(brands=set()) == []
    assert ids(rule_id=2, brand="alpha", status="success", before_id=5) == [1]


def test_limit_defaults_to_100_and_is_capped_at_1000(store):
    store.runs.write_many([make_run(i) for i in range(1, 1102)])
    assert len(store.runs.list()) == 100
    assert len(store.runs.list(limit=5000)) == 1000


@pytest.mark.parametrize(("params", "path"), [
    ({"limit": 0}, "limit"), ({"limit": -5}, "limit"), ({"limit": "10"}, "limit"), ({"limit": None}, "limit"),
    ({"rule_id": "abc"}, "rule_id"), ({"before_id": 1.5}, "before_id"),
])
def test_bad_list_parameters_are_validation_errors(store, params, path):
    with pytest.raises(ValidationFailed) as info:
        store.runs.list(**params)
    assert info.value.details[0]["path"] == path


def test_counts_cover_the_whole_log(store):
    assert store.runs.counts() == {"logged": 0, "success": 0, "failed": 0, "skipped": 0}
    statuses = ["success"] * 3 + ["failed"] * 2 + ["skipped"]
    store.runs.write_many([make_run(i, status=s) for i, s in enumerate(statuses, start=1)])
    assert store.runs.counts() == {"logged": 6, "success": 3, "failed": 2, "skipped": 1}


def test_write_rows_takes_runs_in_column_order_with_their_actions_as_maps(store, db_url):
    actions = ({"type": "notify.manager", "status": "success", "ms": 0.5, "recipients": [7]},
               {"type": "webhook.send", "status": "skipped", "ms": 0.0})
    rows = [(1, 4, 2, "alpha", "deposit.created", "src:1", "failed", "HTTP 500", actions, 10, 12, 9, "src", 1),
            (2, None, None, None, "manual", None, "success", None, [], 20, 21, None, None, None)]
    assert store.runs.write_rows(rows) == 2
    assert store.runs.list() == [
        {"id": 2, "rule_id": None, "rule_version": None, "brand": None, "trigger": "manual", "event_id": None,
         "status": "success", "actions": [], "started_at": 20, "finished_at": 21},
        {"id": 1, "rule_id": 4, "rule_version": 2, "brand": "alpha", "trigger": "deposit.created",
         "event_id": "src:1", "status": "failed", "error": "HTTP 500", "actions": list(actions),
         "started_at": 10, "finished_at": 12, "run_as": 9, "source": "src", "seq": 1},
    ]
    if db_url.startswith("sqlite"):
        types = store.db.execute_sql('SELECT typeof("id"), typeof("rule_id"), typeof("actions"), '
                                     'typeof("started_at"), typeof("run_as") FROM "runs" WHERE "id" = 1').fetchone()
        assert types == ("integer", "integer", "text", "integer", "integer")


def test_write_rows_refuses_actions_json_cannot_encode_and_writes_nothing(store):
    with pytest.raises(ValidationFailed):
        store.runs.write_rows([(1, 1, 1, "a", "t", "e", "success", None, [{"ms": object()}], 1, 2, None)])
    assert store.runs.list() == []


def run_row(run_id: int, rule_id: int | None, source: str | None, seq: int | None) -> tuple:
    return (run_id, rule_id, 1, "alpha", "deposit.created", f"{source}:{seq}", "success", None, [], 1, 2, None,
            source, seq)


def test_an_events_run_of_a_rule_is_stored_once_whatever_is_written_again(store):
    assert store.runs.write_rows([run_row(1, 7, "crm", 5), run_row(2, 8, "crm", 5)]) == 2
    store.runs.write_rows([run_row(3, 7, "crm", 5), run_row(4, 7, "crm", 6), run_row(5, 7, None, None),
                           run_row(6, 7, None, None)])
    assert sorted(run["id"] for run in store.runs.list()) == [1, 2, 4, 5, 6]
    assert store.runs.ran_since("crm", 4) == {(5, 7), (5, 8), (6, 7)}
    assert store.runs.ran_since("crm", 5) == {(6, 7)} and store.runs.ran_since("other", 0) == set()


def test_checkpoints_are_stored_with_the_runs_and_read_back_per_partition(store):
    store.runs.write_rows([run_row(1, 7, "crm", 5)], [("crm", 0, 5), ("crm", 1, 5), ("erp", 0, 9)])
    store.runs.write_rows([], [("crm", 0, 8)])
    assert store.runs.checkpoints([0, 1]) == {"crm": {0: 8, 1: 5}, "erp": {0: 9}}
    assert store.runs.checkpoints([1]) == {"crm": {1: 5}}


def test_a_batch_that_fails_stores_neither_its_runs_nor_its_checkpoints(store):
    with pytest.raises(ValidationFailed):
        store.runs.write_rows([(*run_row(1, 7, "crm", 5)[:8], [{"bad": object()}], *run_row(1, 7, "crm", 5)[9:])],
                              [("crm", 0, 5)])
    assert store.runs.checkpoints([0]) == {} and store.runs.list() == []


def test_trim_deletes_old_runs_in_batches_walking_the_ids_past_young_outliers(store):
    old = [make_run(i, finished_at=100 + i) for i in range(1, 8)]
    young = make_run(3_000, finished_at=10_000)
    store.runs.write_many([*old[:2], young, *old[2:]])
    store.runs.write_many([make_run(2_999, finished_at=50), make_run(4_000, finished_at=20_000)])
    assert store.runs.trim(before_ms=1_000, after_id=-1, limit=3) == (3, 3)
    assert store.runs.trim(1_000, after_id=3, limit=3) == (3, 6)
    assert store.runs.trim(1_000, after_id=6, limit=3) == (2, 3_000)  # 7 and 2999; the young 3000 stays
    assert store.runs.trim(1_000, after_id=3_000, limit=3) == (0, 4_000)
    assert store.runs.trim(1_000, after_id=4_000, limit=3) == (0, None)
    assert [run["id"] for run in store.runs.list()] == [4_000, 3_000]
