"""The run log actor: garbage and runs storage refuses are counted; nothing blocks the log."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace

import pytest

from brokerflow.actors.messages import Flush, RunsFinished
from brokerflow.actors.runlog import RunCounters, RunLogActor
from brokerflow.errors import ValidationFailed
from tests.actors.conftest import NOW_MS, cell, logged, make_job, now_ms


def test_garbage_is_counted_and_the_next_runs_are_written(pipeline, store, stats, run_ids):
    runlog = pipeline.refs["runlog"]
    runlog.tell("garbage")
    runlog.tell(RunsFinished(("not a job", make_job(run_ids, []))))  # the good job of the batch survives
    runlog.tell(RunsFinished((make_job(run_ids, []),)))
    assert len(logged(pipeline, store, 2)) == 2
    assert cell(stats, "runlog")["failed"] == 2


def test_a_run_storage_refuses_is_dropped_and_does_not_block_later_runs(pipeline, store, stats, run_ids):
    poison = make_job(run_ids, [])
    poison = replace(poison, results=({"type": "x", "status": "success", "ms": object()},), actions=({"type": "x"},))
    waiter: Future = Future()
    poison = replace(poison, reply=waiter)
    runlog = pipeline.refs["runlog"]
    runlog.tell(RunsFinished((poison, make_job(run_ids, []))))
    with pytest.raises(ValidationFailed):
        waiter.result(timeout=5)
    runlog.tell(RunsFinished((make_job(run_ids, []),)))
    runs = logged(pipeline, store, 2)
    assert len(runs) == 2 and poison.run_id not in {run["id"] for run in runs}
    assert cell(stats, "runlog")["failed"] == 1


def test_a_waiter_on_a_job_that_cannot_become_a_row_is_told_at_once(pipeline, store, stats, run_ids):
    waiter: Future = Future()
    broken = replace(make_job(run_ids, []), actions=("not a map",), reply=waiter)  # its skipped entry fails
    odd = replace(make_job(run_ids, []), actions=("not a map",), reply="not a future")  # nobody to tell
    pipeline.refs["runlog"].tell(RunsFinished((broken, odd, make_job(run_ids, []))))
    with pytest.raises(AttributeError):
        waiter.result(timeout=5)
    assert len(logged(pipeline, store, 1)) == 1  # the good job of the batch is still written
    assert cell(stats, "runlog")["failed"] == 2


def test_a_waiting_caller_is_answered_once_its_run_is_durable(pipeline, run_ids):
    waiter: Future = Future()
    pipeline.refs["runlog"].tell(RunsFinished((replace(make_job(run_ids, []), reply=waiter),)))
    record = waiter.result(timeout=5)
    assert record["status"] == "success"
    flushed: Future = Future()
    pipeline.refs["runlog"].tell(Flush(flushed))
    assert flushed.result(timeout=5) is True


def test_a_run_is_logged_with_its_unreached_actions_skipped_and_its_run_as(pipeline, store, run_ids):
    actions = [{"type": "notify.manager", "params": {}}, {"type": "webhook.send", "params": {}}]
    failed = make_job(run_ids, actions).with_result("failed", 1.5, "no manager to notify")
    rejected = replace(make_job(run_ids, actions).with_result("success", 0.25, message="no"), status="rejected",
                       extra={"run_as": 9})
    pipeline.refs["runlog"].tell(RunsFinished((failed, rejected)))
    second, first = logged(pipeline, store, 2)
    assert (first["status"], first["error"], first["actions"]) == ("failed", "no manager to notify", [
        {"type": "notify.manager", "status": "failed", "ms": 1.5, "error": "no manager to notify"},
        {"type": "webhook.send", "status": "skipped", "ms": 0.0}])
    assert (second["status"], second["run_as"], second["actions"]) == ("success", 9, [
        {"type": "notify.manager", "status": "success", "ms": 0.25, "message": "no"},
        {"type": "webhook.send", "status": "skipped", "ms": 0.0}])


def test_subscribers_and_waiters_get_the_protocol_run_of_what_was_stored(stats, store, run_ids):
    seen: Future = Future()
    runlog = RunLogActor.start(stats, store.runs, RunCounters(), now_ms, on_logged=seen.set_result)
    waiter: Future = Future()
    job = replace(make_job(run_ids, [{"type": "notify.manager", "params": {}}]), reply=waiter)
    runlog.tell(RunsFinished((job,)))
    record = waiter.result(timeout=5)
    assert seen.result(timeout=5) == [record]
    assert record == {"id": job.run_id, "rule_id": 1, "rule_version": 1, "brand": "alpha",
                      "trigger": "deposit.created", "event_id": "e1", "status": "success",
                      "actions": [{"type": "notify.manager", "status": "skipped", "ms": 0.0}], "error": None,
                      "started_at": NOW_MS, "finished_at": NOW_MS}
    assert store.runs.list() == [{key: value for key, value in record.items() if key != "error"}]


def test_run_latency_counts_each_observation_in_the_first_bucket_that_holds_it():
    from brokerflow.actors.runlog import RunLatency

    latency = RunLatency(bounds_ms=(10, 100))
    latency.observe_all([0, 10, 11, 100, 5000])
    assert latency.snapshot() == {"bounds_ms": [10, 100], "counts": [2, 2, 1], "sum_ms": 5121, "count": 5}
