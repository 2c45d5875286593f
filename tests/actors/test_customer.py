"""The customer actor: garbage and a broken job are counted; the next change is stored and echoed."""

from dataclasses import replace

from brokerflow.actors.customer import CustomerActor
from brokerflow.actors.messages import JobBatch
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


def test_writes_the_replica_caught_up_with_are_forgotten(stats, pipeline, store, refs, run_ids, outbound,
                                                         monkeypatch):
    import brokerflow.actors.customer as customer_module

    monkeypatch.setattr(customer_module, "PRUNE_AT", 2)
    for customer_id in (601, 602, 603):
        store.reference.upsert("customer", {"id": customer_id, "brand": "alpha"})
        refs.apply("customer", {"id": customer_id, "brand": "alpha"})

    def echo(events):  # the router's part: the echoed record replaces the replica's
        for event in events:
            refs.apply("customer", event.record)

    actor = CustomerActor.start(stats, pipeline, now_ms, refs, store.reference, outbound, echo)
    pipeline.register("customer", actor)
    for customer_id in (601, 602, 603):
        actor.tell(JobBatch((make_job(run_ids, [RISK_HIGH], customer_id=customer_id),)))
    logged(pipeline, store, 3)
    known = actor.proxy().known.get(timeout=5)
    assert len(known) <= 1
