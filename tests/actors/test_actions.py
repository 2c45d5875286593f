"""The action actor base: a batch whose side effects cannot be stored fails its runs, not the actor."""

from typing import Any

from brokerflow.actors.customer import CustomerActor
from brokerflow.actors.messages import JobBatch
from tests.actors.conftest import cell, logged, make_job, now_ms

STATUS = {"type": "customer.set_status", "params": {"status": "blocked"}}
NOTIFY = {"type": "notify.manager", "params": {"message": "after"}}


class FailsOnce:
    """The real reference repository; its first customer write fails (a locked database)."""

    def __init__(self, repo: Any) -> None:
        self.repo, self.failed = repo, False

    def fail_first(self) -> None:
        if not self.failed:
            self.failed = True
            raise OSError("database is locked")

    def upsert(self, kind: str, record: dict) -> dict:
        self.fail_first()
        return self.repo.upsert(kind, record)

    def upsert_many(self, kind: str, records: list[dict]) -> list[dict]:
        self.fail_first()
        return self.repo.upsert_many(kind, records)


def test_a_failed_commit_fails_the_batchs_runs_and_the_next_batch_works(stats, pipeline, store, refs, run_ids,
                                                                        outbound):
    actor = CustomerActor.start(stats, pipeline, now_ms, refs, FailsOnce(store.reference), outbound,
                                lambda events: None)
    pipeline.register("customer", actor)
    first = make_job(run_ids, [STATUS, NOTIFY])
    actor.tell(JobBatch((first,)))
    [run] = logged(pipeline, store, 1)
    assert run["status"] == "failed"
    assert run["error"] == "customer could not store its changes: OSError"
    assert [a["status"] for a in run["actions"]] == ["failed", "skipped"]
    assert store.reference.get("customer", 501)["status"] == "active"

    second = make_job(run_ids, [STATUS])
    actor.tell(JobBatch((second,)))
    runs = logged(pipeline, store, 2)
    assert runs[0]["id"] == second.run_id and runs[0]["status"] == "success"
    assert runs[0]["actions"][0]["changed"] is True  # the failed write was not taken as done
    assert store.reference.get("customer", 501)["status"] == "blocked"
    assert cell(stats, "customer")["failed"] == 1  # the failed commit
