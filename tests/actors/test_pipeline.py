"""The routing slip: jobs go to their next action's executor, finished ones to the run log."""

from __future__ import annotations

from tests.actors.conftest import logged, make_job


def test_a_job_whose_action_has_no_executor_here_fails_and_is_logged(pipeline, store, run_ids):
    pipeline.dispatch([make_job(run_ids, [{"type": "email.send", "params": {"to": "a@b", "subject": "s"}}]),
                       make_job(run_ids, [{"type": "no.such.action", "params": {}}]),
                       make_job(run_ids, [])])
    runs = logged(pipeline, store, 3)
    assert [run["status"] for run in runs] == ["success", "failed", "failed"]
    assert "no executor for action 'no.such.action'" in runs[1]["error"]
    assert "no executor for action 'email.send'" in runs[2]["error"]
