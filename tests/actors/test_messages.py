"""The routing slip: ``with_result`` gives a new job and leaves the one an actor may still hold."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import fields, replace

from brokerflow.actors.messages import RunJob

ACTIONS = ({"type": "customer.set_status", "params": {}}, {"type": "notify.manager", "params": {}})


def job() -> RunJob:
    """Every field set to a value that is not its default, so a field copied wrong shows."""
    return RunJob(run_id=7, rule_id=3, rule_version=2, brand="alpha", trigger="deposit.created", event_id="e1",
                  actions=ACTIONS, context={"brand": "alpha"}, started_ms=1000, depth=2, results=(),
                  status="running", error=None, reply=Future(), origin="process", extra={"pid": "p1"})


def test_with_result_appends_the_result_and_copies_every_other_field():
    start = job()
    done = start.with_result("success", 1.23456, changed=True)
    assert done.results == ({"type": "customer.set_status", "status": "success", "ms": 1.235, "changed": True},)
    assert replace(done, results=()) == start
    assert [f.name for f in fields(RunJob)][-6:] == ["results", "status", "error", "reply", "origin", "extra"]


def test_the_job_handed_in_is_left_as_it_was():
    start = job()
    done = start.with_result("success", 1.0)
    assert (start.results, start.next_index, start.next_action) == ((), 0, ACTIONS[0])
    assert (done.next_index, done.next_action) == (1, ACTIONS[1])


def test_a_failed_action_ends_the_run_with_its_error():
    done = job().with_result("failed", 2.0, "customer 9 is not known")
    assert (done.status, done.error, done.next_action) == ("failed", "customer 9 is not known", None)
    assert done.results[-1] == {"type": "customer.set_status", "status": "failed", "ms": 2.0,
                                "error": "customer 9 is not known"}


def test_a_successful_action_keeps_the_runs_status_and_error():
    done = replace(job(), status="rejected").with_result("success", 0.5)
    assert (done.status, done.error) == ("rejected", None)
