"""The notifier: garbage and a broken job are counted; the next notification is stored and sent."""

from __future__ import annotations

from dataclasses import replace

from brokerflow.actors.messages import JobBatch
from brokerflow.actors.notifier import NotifierActor
from tests.actors.conftest import cell, logged, make_job, now_ms
from tests.conftest import wait_until

NOTIFY = {"type": "notify.manager", "params": {"message": "deposit {{trade.login}}"}}


def test_garbage_and_a_broken_job_are_counted_and_the_next_notification_goes_out(
        stats, pipeline, store, refs, run_ids, outbound, listener):
    notifier = NotifierActor.start(stats, pipeline, now_ms, refs, store.notifications, outbound)
    pipeline.register("notifier", notifier)
    notifier.tell("garbage")
    broken = replace(make_job(run_ids, [NOTIFY]), context=None)
    good = make_job(run_ids, [NOTIFY], **{"trade.login": 1001})
    notifier.tell(JobBatch((broken, good)))
    runs = {run["id"]: run for run in logged(pipeline, store, 2)}
    assert runs[broken.run_id]["status"] == "failed"
    assert runs[broken.run_id]["error"] == "internal error: AttributeError"
    assert runs[good.run_id]["status"] == "success" and runs[good.run_id]["actions"][0]["recipients"] == [8]
    wait_until(lambda: listener.of("notify.manager"))
    assert listener.of("notify.manager") == [{"manager_id": 8, "message": "deposit 1001", "rule_id": 1,
                                              "run_id": good.run_id, "brand": "alpha"}]
    assert [(n["manager_id"], n["message"]) for n in store.notifications.list()] == [(8, "deposit 1001")]
    assert cell(stats, "notifier")["failed"] == 2
