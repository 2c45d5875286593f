"""The run log actor: garbage and runs storage refuses are counted; nothing blocks the log."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace

import pytest

from actors.messages import Flush, RunsFinished
from brokerflow.errors import ValidationFailed
from tests.actors.conftest import cell, logged, make_job


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


def test_a_waiting_caller_is_answered_once_its_run_is_durable(pipeline, run_ids):
    waiter: Future = Future()
    pipeline.refs["runlog"].tell(RunsFinished((replace(make_job(run_ids, []), reply=waiter),)))
    record = waiter.result(timeout=5)
    assert record["status"] == "success"
    flushed: Future = Future()
    pipeline.refs["runlog"].tell(Flush(flushed))
    assert flushed.result(timeout=5) is True
