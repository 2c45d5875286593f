"""The run log command: filters, paging, limits, ISO times."""

from __future__ import annotations

from tests.api.conftest import NOW_MS


def _runs(store, count: int) -> list[int]:
    ids = list(store.runs.allocate_ids(count))
    store.runs.write_many([
        {"id": run_id, "rule_id": 1 + run_id % 2, "rule_version": 1, "brand": "alpha" if run_id % 2 else "beta",
         "trigger": "deposit.created", "event_id": f"e{run_id}",
         "status": "success" if run_id % 3 else "failed",
         "actions": [{"type": "notify.manager", "status": "success", "ms": 1}],
         "started_at": NOW_MS, "finished_at": NOW_MS + 5}
        for run_id in ids
    ])
    return ids


def test_runs_come_newest_first_with_iso_times(api):
    ids = _runs(api.services.store, 5)
    runs = api.body("MngGetWorkflowRunLog")["runs"]
    assert [r["id"] for r in runs] == sorted(ids, reverse=True)
    assert runs[0]["started_at"] == "2026-11-23T12:00:00.000Z"
    assert runs[0]["finished_at"] == "2026-11-23T12:00:00.005Z"
    assert runs[0]["actions"] == [{"type": "notify.manager", "status": "success", "ms": 1}]


def test_runs_filter_and_page(api):
    ids = _runs(api.services.store, 12)
    alpha = [i for i in ids if i % 2]
    got = api.body("MngGetWorkflowRunLog", {"brand": "alpha"})["runs"]
    assert [r["id"] for r in got] == sorted(alpha, reverse=True)
    page = api.body("MngGetWorkflowRunLog", {"limit": 3, "before_id": ids[-1]})["runs"]
    assert [r["id"] for r in page] == sorted(ids, reverse=True)[1:4]
    failed = api.body("MngGetWorkflowRunLog", {"status": "failed"})["runs"]
    assert failed and all(r["status"] == "failed" for r in failed)
    by_rule = api.body("MngGetWorkflowRunLog", {"rule_id": 2})["runs"]
    assert by_rule and all(r["rule_id"] == 2 for r in by_rule)


def test_limit_must_be_between_1_and_1000(api):
    for bad in (0, 1001, -5):
        error = api.error("MngGetWorkflowRunLog", {"limit": bad})
        assert error["code"] == "VALIDATION_FAILED"
        assert error["details"][0]["path"] == "limit"
    assert api.error("MngGetWorkflowRunLog", {"limit": "10"})["code"] == "VALIDATION_FAILED"
    assert api.body("MngGetWorkflowRunLog", {"limit": 1000})["runs"] == []


def test_a_scoped_token_reads_only_its_brand_runs(api):
    _runs(api.services.store, 6)
    runs = api.body("MngGetWorkflowRunLog", {}, token=api.alpha["SESSION_MANAGER"])["runs"]
    assert runs and {r["brand"] for r in runs} == {"alpha"}
    error = api.error("MngGetWorkflowRunLog", {"brand": "beta"}, token=api.alpha["SESSION_MANAGER"])
    assert error["code"] == "ACCESS_DENIED"
