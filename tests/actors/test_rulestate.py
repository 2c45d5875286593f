"""Rule state in a brand's rule actor: cooldowns on a test clock, aggregates, both kept in storage."""

from __future__ import annotations

from concurrent.futures import Future

from brokerflow.actors.messages import Candidate, Evaluate, Flush, ReloadRules, StateChanges
from brokerflow.actors.rules import RuleActor
from brokerflow.actors.rulestate import RuleState, RuleStateWriter, Suppressed
from tests.actors.conftest import NOW_MS, cell, logged
from tests.conftest import wait_until

COOLING = {"id": 7, "version": 1, "name": "once an hour", "brand": "alpha", "trigger": "deposit.created",
           "status": "active", "conditions": [{"field": "amount_usd", "op": ">=", "value": 100}],
           "cooldown": {"key": "customer.id", "seconds": 3600}, "actions": []}
SUMMING = {"id": 8, "version": 1, "name": "10k a day", "brand": "alpha", "trigger": "deposit.created",
           "status": "active", "actions": [],
           "conditions": [{"agg": "sum", "field": "amount_usd", "window_s": 86400, "by": "customer.id",
                           "op": ">=", "value": 10_000}]}


class Clock:
    def __init__(self) -> None:
        self.now = NOW_MS

    def __call__(self) -> int:
        return self.now


def deposit(event_id: str, customer: int, amount: float, ts: int = NOW_MS) -> Candidate:
    return Candidate("deposit.created", event_id, {"brand": "alpha", "amount_usd": amount, "customer.id": customer,
                                                   "_missing": {}}, 0, ts)


def flushed(writer) -> None:
    reply: Future = Future()
    writer.tell(Flush(reply))
    reply.result(timeout=5)


def start(stats, pipeline, run_ids, store, clock, rules, suppressed=None):
    writer = RuleStateWriter.start(stats, store.rule_state, clock)
    suppressed = suppressed or Suppressed()
    actor = RuleActor.start("alpha", stats, pipeline, run_ids, clock,
                            RuleState("alpha", store.rule_state, writer, suppressed))
    actor.tell(ReloadRules({"alpha": tuple(rules)}))
    return actor, writer, suppressed


def test_a_cooldown_suppresses_then_expires_on_the_test_clock(stats, pipeline, run_ids, store) -> None:
    clock = Clock()
    actor, writer, suppressed = start(stats, pipeline, run_ids, store, clock, [COOLING])
    actor.tell(Evaluate((deposit("a", 501, 150), deposit("b", 501, 200), deposit("c", 502, 300))))
    logged(pipeline, store, 2)
    wait_until(lambda: suppressed.total == 1)
    clock.now += 3_599_000
    actor.tell(Evaluate((deposit("d", 501, 150),)))
    wait_until(lambda: suppressed.total == 2)
    clock.now += 1000
    actor.tell(Evaluate((deposit("e", 501, 150),)))
    runs = logged(pipeline, store, 3)
    assert sorted(run["event_id"] for run in runs) == ["a", "c", "e"]
    assert suppressed.total == 2


def test_a_cooldown_survives_a_restart_of_the_actor(stats, pipeline, run_ids, store) -> None:
    clock = Clock()
    actor, writer, _ = start(stats, pipeline, run_ids, store, clock, [COOLING])
    actor.tell(Evaluate((deposit("a", 501, 150),)))
    logged(pipeline, store, 1)
    wait_until(lambda: store.rule_state.cooldown_of(7, "n:501") == NOW_MS)
    actor.stop()
    writer.stop()
    clock.now += 60_000
    again, _, suppressed = start(stats, pipeline, run_ids, store, clock, [COOLING])
    again.tell(Evaluate((deposit("b", 501, 150),)))
    wait_until(lambda: suppressed.total == 1)
    assert len(store.runs.list()) == 1


def test_an_aggregate_sums_one_customers_deposits_and_a_restart_keeps_them(stats, pipeline, run_ids, store) -> None:
    clock = Clock()
    actor, writer, _ = start(stats, pipeline, run_ids, store, clock, [SUMMING])
    actor.tell(Evaluate((deposit("a", 501, 4000), deposit("b", 502, 9000), deposit("c", 501, 4000))))
    flushed_ok = wait_until(lambda: len(store.rule_state.load_window("alpha", "deposit.created|customer.id|amount_usd",
                                                                     100)) == 3)
    assert flushed_ok
    actor.stop()
    writer.stop()
    again, writer, _ = start(stats, pipeline, run_ids, store, clock, [SUMMING])
    again.tell(Evaluate((deposit("d", 502, 500), deposit("e", 501, 2000, NOW_MS + 1000))))
    [run] = logged(pipeline, store, 1)
    assert run["event_id"] == "e"


def test_the_writer_counts_a_bad_change_and_stores_the_next(stats, store) -> None:
    writer = RuleStateWriter.start(stats, store.rule_state, Clock())
    writer.tell(StateChanges(cooldowns=(("not", "a", "row", "at all"),)))  # type: ignore[arg-type]
    writer.tell(StateChanges(cooldowns=((9, "n:1", NOW_MS),)))
    wait_until(lambda: store.rule_state.cooldown_of(9, "n:1") == NOW_MS)
    assert cell(stats, "rulestate")["failed"] >= 1


def test_a_gained_partitions_state_is_reloaded_from_what_its_last_owner_stored(
        stats, pipeline, run_ids, store) -> None:
    """Two rule actors on one database, as two cluster members: customer 501 moves from a to b."""
    from brokerflow.actors.messages import ReloadState
    from brokerflow.workflow.partitions import partition_of
    from brokerflow.workflow.rules.statekeys import StateKeys

    clock = Clock()
    b, b_writer, b_suppressed = start(stats, pipeline, run_ids, store, clock, [COOLING, SUMMING])
    b.tell(Evaluate((deposit("b0", 501, 150),)))  # b owned 501 once: a stale cooldown and entry
    logged(pipeline, store, 1)  # the cooldown rule ran (150 is far from the sum's 10,000)
    flushed(b_writer)
    a_suppressed = Suppressed()
    a, a_writer, _ = start(stats, pipeline, run_ids, store, clock, [COOLING, SUMMING], a_suppressed)
    clock.now += 7_200_000  # b's cooldown is over; a's starts now
    a.tell(Evaluate((deposit("a1", 501, 6000), deposit("a2", 501, 3000), deposit("a3", 502, 150))))
    wait_until(lambda: a_suppressed.total == 1)
    flushed(a_writer)  # what a hand-over does before the lease is freed
    a.stop()

    gained = {partition_of("c:501", 64)}
    assert partition_of("c:502", 64) not in gained
    # Other customers' state in storage: the gained keys are a small share, read by their keys.
    others = [c for c in range(600, 700) if partition_of(f"c:{c}", 64) not in gained]
    store.rule_state.write([(7, f"n:{c}", NOW_MS) for c in others],
                           [("alpha", "deposit.created|customer.id|amount_usd", f"n:{c}", NOW_MS, 1.0, None)
                            for c in others])
    b.tell(ReloadState(StateKeys(gained, 64, {})))
    clock.now += 1000
    b.tell(Evaluate((deposit("b1", 501, 1500), deposit("b2", 502, 150))))
    wait_until(lambda: b_suppressed.total == 1)  # 501: a's run cools it down here too
    runs = logged(pipeline, store, 5)
    by_event = sorted((run["event_id"], run["rule_id"]) for run in runs)
    # b1 is suppressed by a's run a1 (b's own b0 cooled down long ago), and its sum is the
    # 150 + 6,000 + 3,000 stored + 1,500 >= 10,000: without the reload b would have run the
    # cooldown rule and summed 1,650.
    assert by_event == [("a1", 7), ("a3", 7), ("b0", 7), ("b1", 8), ("b2", 7)]
    # 502 was not gained: b keeps its own memory of it (nothing), a's run of a3 is not loaded.
