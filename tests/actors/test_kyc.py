"""The KYC actor: garbage and a bad step update are counted; the next action changes the profile."""

from brokerflow.actors.kyc import KycActor
from brokerflow.actors.messages import JobBatch, KycStepUpdate
from tests.actors.conftest import cell, logged, make_job, now_ms
from tests.conftest import wait_until

LEVEL_1 = {"type": "kyc.set_required_level", "params": {"level": 1, "reason": "first deposit"}}


def test_garbage_and_a_bad_update_are_counted_and_the_next_action_applied(stats, pipeline, store, refs, run_ids,
                                                                         outbound, listener):
    actor = KycActor.start(stats, pipeline, now_ms, refs, store.kyc, outbound)
    pipeline.register("kyc", actor)
    actor.tell("garbage")
    actor.tell(KycStepUpdate("501", "alpha", "ID", 1, "approved"))  # type: ignore[arg-type]  # not an int id
    job = make_job(run_ids, [LEVEL_1])
    actor.tell(JobBatch((job,)))
    [run] = logged(pipeline, store, 1)
    assert run["status"] == "success"
    profile = store.kyc.get_profile(501)
    assert profile["required_level"] == 1 and [s["step_code"] for s in profile["steps"]] == ["ID"]
    wait_until(lambda: listener.of("kyc.changed"))
    assert cell(stats, "kyc")["failed"] == 2

    actor.tell(KycStepUpdate(501, "alpha", "ID", 1, "approved"))
    wait_until(lambda: store.kyc.get_profile(501)["current_level"] == 1)


def test_a_missing_or_unknown_customer_fails_the_run(stats, pipeline, store, refs, run_ids, outbound):
    actor = KycActor.start(stats, pipeline, now_ms, refs, store.kyc, outbound)
    pipeline.register("kyc", actor)
    jobs = (make_job(run_ids, [LEVEL_1], customer_id=None), make_job(run_ids, [LEVEL_1], customer_id=999))
    actor.tell(JobBatch(jobs))
    runs = logged(pipeline, store, 2)
    assert sorted(run["error"] for run in runs) == [
        "kyc.set_required_level needs a linked customer; this event has none",
        "kyc.set_required_level: customer 999 is not known"]
    assert store.kyc.get_profile(999) is None
    assert cell(stats, "kyc")["failed"] == 0  # a failed run is not an actor failure


def test_a_customer_id_of_the_wrong_type_fails_its_own_run_and_the_batch_goes_on(stats, pipeline, store, refs,
                                                                                  run_ids, outbound):
    actor = KycActor.start(stats, pipeline, now_ms, refs, store.kyc, outbound)
    pipeline.register("kyc", actor)
    jobs = (make_job(run_ids, [LEVEL_1], customer_id=[501]), make_job(run_ids, [LEVEL_1]))  # type: ignore[arg-type]
    actor.tell(JobBatch(jobs))
    runs = {run["id"]: run for run in logged(pipeline, store, 2)}
    bad, good = runs[jobs[0].run_id], runs[jobs[1].run_id]
    assert bad["status"] == "failed" and good["status"] == "success"
    assert store.kyc.get_profile(501)["required_level"] == 1
