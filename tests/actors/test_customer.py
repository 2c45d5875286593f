"""The customer actor: garbage and a broken job are counted; the next change is stored and echoed."""

from dataclasses import replace

from actors.customer import CustomerActor
from actors.messages import JobBatch
from tests.actors.conftest import cell, logged, make_job, now_ms
from tests.conftest import wait_until

RISK_HIGH = {"type": "customer.set_risk_level", "params": {"risk_level": "high"}}


def test_garbage_and_a_broken_job_are_counted_and_the_next_change_made(stats, pipeline, store, refs, run_ids,
                                                                      outbound, listener):
    echoes = []
    actor = CustomerActor.start(stats, pipeline, now_ms, refs, store.reference, outbound, echoes.extend)
    pipeline.register("customer", actor)
    actor.tell("garbage")
    broken = replace(make_job(run_ids, [RISK_HIGH]), context=None)
    good = make_job(run_ids, [RISK_HIGH])
    actor.tell(JobBatch((broken, good)))
    runs = {run["id"]: run for run in logged(pipeline, store, 2)}
    assert runs[broken.run_id]["status"] == "failed"
    assert runs[good.run_id]["status"] == "success"
    assert store.reference.get("customer", 501)["risk_level"] == "high"
    wait_until(lambda: listener.of("customer.changed"))
    [echo] = echoes
    assert (echo.topic, echo.depth, echo.record["risk_level"], echo.extra["changes"]) == (
        "customer.push", 1, "high", {"risk_level": "high"})
    assert cell(stats, "customer")["failed"] == 2


def test_its_own_write_is_seen_until_the_replica_moves_on(stats, pipeline, store, refs, run_ids, outbound):
    actor = CustomerActor.start(stats, pipeline, now_ms, refs, store.reference, outbound, lambda events: None)
    pipeline.register("customer", actor)
    actor.tell(JobBatch((make_job(run_ids, [RISK_HIGH]), make_job(run_ids, [RISK_HIGH]))))
    runs = logged(pipeline, store, 2)
    assert sorted(run["actions"][0]["changed"] for run in runs) == [False, True]
    refs.apply("customer", {"id": 501, "risk_level": "low"})  # the CRM set it back
    actor.tell(JobBatch((make_job(run_ids, [RISK_HIGH]),)))
    assert logged(pipeline, store, 3)[0]["actions"][0]["changed"] is True
