"""The router: garbage and broken events are counted; the batch's good events still run."""

from __future__ import annotations

from typing import Any

from brokerflow.actors.kyc import KycActor
from brokerflow.actors.messages import EventBatch, ReferenceUpdate, ReloadRules
from brokerflow.actors.router import EchoMemory, RouterActor, RouterCounters
from brokerflow.actors.rules import RuleActor
from brokerflow.workflow.events import Event
from tests.actors.conftest import cell, logged, now_ms
from tests.conftest import wait_until

DEPOSIT_RULE = {"id": 1, "version": 1, "name": "any", "brand": "alpha", "trigger": "deposit.created",
                "status": "active", "conditions": [], "actions": []}


def deposit(order: int, login: int = 1001, **extra: Any) -> Event:
    return Event("trade.push", "EV_RECORD_ADD", {"order": order, "login": login, "cmd": "OP_BALANCE_IN",
                                                 "profit": 10.0}, source="t", seq=order, **extra)


def start_router(stats, refs, reference_repo, pipeline, run_ids, outbound, store, counters=None):
    kyc = KycActor.start(stats, pipeline, now_ms, refs, store.kyc, outbound)
    router = RouterActor.start(stats, refs, reference_repo,
                               lambda brand: RuleActor.start(brand, stats, pipeline, run_ids, now_ms),
                               kyc, counters or RouterCounters(), 3)
    router.ask(ReloadRules({"alpha": (DEPOSIT_RULE,)}), block=False)
    return router


def test_garbage_and_broken_events_are_counted_and_the_good_ones_run(stats, refs, store, pipeline, run_ids,
                                                                      outbound):
    router = start_router(stats, refs, store.reference, pipeline, run_ids, outbound, store)
    router.tell("garbage")
    broken_kyc = Event("kyc.step.push", None, {"status": "approved"})  # no customer_id: the KYC hand-off raises
    router.tell(EventBatch((deposit(1), broken_kyc, "not an event", deposit(2))))  # type: ignore[arg-type]
    router.tell(EventBatch((deposit(3),)))
    runs = logged(pipeline, store, 3)
    assert sorted(run["event_id"] for run in runs) == ["t:1", "t:2", "t:3"]
    assert cell(stats, "router")["failed"] == 3


class FailingUpserts:
    """The real repository, except that storing fails (a locked or lost database)."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo

    def upsert_many(self, kind: str, records: list) -> list:
        raise OSError("disk gone")

    def upsert_each(self, kind: str, records: list) -> list:
        raise OSError("disk gone")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.repo, name)


def test_a_reference_store_failure_does_not_lose_the_batchs_events(stats, refs, store, pipeline, run_ids,
                                                                     outbound):
    counters = RouterCounters()
    router = start_router(stats, refs, FailingUpserts(store.reference), pipeline, run_ids, outbound, store,
                          counters)
    account = Event("account.push", "EV_RECORD_ADD", {"login": 1005, "group": "real-usd"})
    router.tell(EventBatch((account, deposit(1, login=1005))))
    [run] = logged(pipeline, store, 1)
    assert run["event_id"] == "t:1"
    assert refs.accounts[1005]["group"] == "real-usd"  # the replica has it
    assert cell(stats, "router")["failed"] == 1
    assert counters.reference_unstored == 1


SECRET = "s3cr3t-value"


def test_one_unstorable_reference_record_costs_only_itself(stats, refs, store, pipeline, run_ids, outbound,
                                                           caplog):
    counters = RouterCounters()
    router = start_router(stats, refs, store.reference, pipeline, run_ids, outbound, store, counters)
    pushes = (
        Event("account.push", "EV_RECORD_ADD", {"login": 2001, "group": "real-usd"}),
        Event("account.push", "EV_RECORD_ADD", {"login": 2**63, "group": "real-usd", "name": SECRET}),  # > BIGINT
        Event("account.push", "EV_RECORD_ADD", {"login": 2002, "group": "real-usd"}),
        Event("customer.push", "EV_RECORD_UPDATE", {"id": 601, "brand": "alpha"}),
        Event("customer.push", "EV_RECORD_UPDATE", {"id": 602, "brand": "alpha", "blob": {b"k": SECRET}}),  # no JSON
        Event("customer.push", "EV_RECORD_UPDATE", {"id": 603, "brand": "alpha", "raw": SECRET.encode()}),  # no JSON
        Event("customer.push", "EV_RECORD_UPDATE", {"id": 604, "brand": "alpha"}),
    )
    router.tell(EventBatch((*pushes, deposit(1, login=2002))))
    [run] = logged(pipeline, store, 1)  # the batch's events still run
    assert run["event_id"] == "t:1"
    wait_until(lambda: counters.reference_unstored == 3)
    assert [r["login"] for r in store.reference.all("account") if r["login"] > 2000] == [2001, 2002]
    assert [r["id"] for r in store.reference.all("customer") if r["id"] > 600] == [601, 604]
    assert cell(stats, "router")["failed"] == 3
    assert counters.snapshot()["reference_unstored"] == 3
    unstored = [r.getMessage() for r in caplog.records if "could not store a" in r.getMessage()]
    assert len(unstored) == 3 and "OverflowError" in unstored[0] and "TypeError" in unstored[1]
    assert not any(SECRET in r.getMessage() or str(2**63) in r.getMessage() for r in caplog.records)


def test_events_past_the_loop_bound_run_no_rules_and_are_counted(stats, refs, store, pipeline, run_ids, outbound):
    counters = RouterCounters()
    router = start_router(stats, refs, store.reference, pipeline, run_ids, outbound, store, counters)
    router.tell(EventBatch((deposit(1, depth=4), deposit(2, depth=3))))
    [run] = logged(pipeline, store, 1)
    assert run["event_id"] == "t:2"
    assert counters.snapshot() == {"skipped_no_brand": 0, "loops_stopped": 1, "no_trigger": 0,
                                  "reference_unstored": 0}


def test_events_that_map_to_no_trigger_are_counted_and_a_deleted_rate_leaves_the_replica(
        stats, refs, store, pipeline, run_ids, outbound):
    counters = RouterCounters()
    router = start_router(stats, refs, store.reference, pipeline, run_ids, outbound, store, counters)
    rate = {"currency": "eur", "usd": 1.1}
    router.tell(EventBatch((Event("rate.push", "EV_RECORD_ADD", rate), deposit(1))))
    logged(pipeline, store, 1)
    assert counters.no_trigger == 1 and refs.usd_rate("EUR") == 1.1
    router.tell(EventBatch((Event("rate.push", "EV_RECORD_DELETE", rate), deposit(2))))
    logged(pipeline, store, 2)
    assert counters.no_trigger == 2 and refs.usd_rate("EUR") is None


def test_a_reference_update_from_the_api_reaches_the_replica(stats, refs, store, pipeline, run_ids, outbound):
    router = start_router(stats, refs, store.reference, pipeline, run_ids, outbound, store)
    router.tell(ReferenceUpdate("group", {"group": "new", "brand": "beta"}))
    router.tell(ReferenceUpdate("account", {"login": 1003}, removed=True))
    wait_until(lambda: "new" in refs.groups and 1003 not in refs.accounts)


def echo(customer_id: int, changes: dict, depth: int, at_ms: int = 0) -> Event:
    return Event("customer.push", "EV_RECORD_UPDATE", {"id": customer_id, **changes}, received_ms=at_ms,
                 depth=depth, extra={"internal": True, "changes": changes})


def crm_push(customer_id: int, at_ms: int = 1000, **record: Any) -> Event:
    return Event("customer.push", "EV_RECORD_UPDATE", {"id": customer_id, **record}, received_ms=at_ms)


def test_echo_memory_gives_a_crm_echo_the_depth_of_the_change_once():
    memory = EchoMemory(window_ms=5000)
    memory.remember(echo(501, {"risk_level": "high"}, depth=2))
    assert memory.depth_of(crm_push(501, risk_level="low")) is None       # not our value
    assert memory.depth_of(crm_push(502, risk_level="high")) is None      # not our customer
    assert memory.depth_of(crm_push(501, risk_level="high", email="x")) == 2
    assert memory.depth_of(crm_push(501, risk_level="high")) is None      # used up


def test_echo_memory_forgets_after_its_window_and_past_its_size():
    memory = EchoMemory(window_ms=5000, customers=2)
    memory.remember(echo(501, {"status": "blocked"}, depth=1))
    assert memory.depth_of(crm_push(501, at_ms=6000, status="blocked")) is None
    for customer_id in (1, 2, 3):
        memory.remember(echo(customer_id, {"status": "x"}, depth=1))
    assert memory.depth_of(crm_push(1, status="x")) is None
    assert memory.depth_of(crm_push(3, status="x")) == 1
