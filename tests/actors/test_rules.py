"""A brand's rule actor: a broken candidate or rule set is counted; the next evaluation runs."""

from __future__ import annotations

from brokerflow.actors.messages import Candidate, Evaluate, ReloadRules
from brokerflow.actors.rules import RuleActor
from tests.actors.conftest import cell, logged, now_ms

RULE = {"id": 1, "version": 1, "name": "big", "brand": "alpha", "trigger": "deposit.created", "status": "active",
        "conditions": [{"field": "amount_usd", "op": ">=", "value": 100}], "actions": []}


def candidate(amount, event_id="e1", missing=None):
    return Candidate("deposit.created", event_id, {"brand": "alpha", "amount_usd": amount,
                                                   "_missing": missing or {}}, 0)


def test_garbage_and_a_broken_candidate_are_counted_and_the_rest_evaluated(stats, pipeline, run_ids, store):
    actor = RuleActor.start("alpha", stats, pipeline, run_ids, now_ms)
    actor.tell(ReloadRules({"alpha": (RULE,)}))
    actor.tell("garbage")
    actor.tell(ReloadRules({"alpha": ("not a rule",)}))  # fails: the loaded rule set stays
    broken = Candidate("deposit.created", "bad", None, 0)  # type: ignore[arg-type]
    actor.tell(Evaluate((broken, candidate(150, "good"), candidate(5, "small"))))
    runs = logged(pipeline, store, 1)
    assert [(run["event_id"], run["status"]) for run in runs] == [("good", "success")]
    assert cell(stats, "rules:alpha")["failed"] == 3


def test_a_condition_without_data_gives_a_skipped_run_that_says_why(stats, pipeline, run_ids, store):
    actor = RuleActor.start("alpha", stats, pipeline, run_ids, now_ms)
    actor.tell(ReloadRules({"alpha": (dict(RULE, actions=[{"type": "notify.manager", "params": {"message": "m"}}]),)}))
    actor.tell(Evaluate((candidate(None, missing={"amount_usd": "amount_usd unknown: no USD rate for JPY"}),)))
    [run] = logged(pipeline, store, 1)
    assert (run["status"], run["error"]) == ("skipped", "amount_usd unknown: no USD rate for JPY")
    assert run["actions"] == [{"type": "notify.manager", "status": "skipped", "ms": 0.0}]


def test_run_ids_are_unique_across_threads_and_engines_sharing_a_database(store):
    from brokerflow.actors.rules import RunIds
    from tests.storage.conftest import run_threads

    engines = [RunIds(store.runs, block=7), RunIds(store.runs, block=7)]
    taken = run_threads(4, lambda index: [engines[index % 2].next() for _ in range(100)], store)
    ids = [run_id for ids in taken for run_id in ids]
    assert len(ids) == len(set(ids)) == 400
    assert all(isinstance(run_id, int) for run_id in ids)



def test_run_ids_of_processes_sharing_a_database_grow_with_time_across_them(store):
    """Under --shards each process takes short-lived blocks: a run logged later by any process
    has a higher id than one logged a block-age earlier, so newest first holds for the engine."""
    from brokerflow.actors.rules import RunIds

    now = [0.0]
    first, second = (RunIds(store.runs, block=100, max_age_s=1.0, clock=lambda: now[0]) for _ in range(2))
    early = [first.next(), second.next(), first.next()]
    assert len(set(early)) == 3
    now[0] = 1.5  # both blocks are too old now, though barely used
    late = [first.next(), second.next()]
    assert min(late) > max(early)
    assert second.next() == late[1] + 1  # within its age a block is used as before


def test_run_ids_of_a_single_process_use_up_each_block(store):
    from brokerflow.actors.rules import RunIds

    ids = RunIds(store.runs, block=100)
    first = ids.next()
    assert [ids.next() for _ in range(99)] == list(range(first + 1, first + 100))


def test_the_next_run_id_block_is_reserved_ahead_so_no_rule_actor_waits_for_the_database(store):
    """The spare block is reserved right after a block is taken: another engine reserving later
    gets ids after it, and this one moves on to its spare, not to a block reserved on demand."""
    from brokerflow.actors.rules import RunIds

    ours, theirs = RunIds(store.runs, block=100), RunIds(store.runs, block=100, prefetch=False)
    first = ours.next()
    assert ours.wait_spare()
    other = theirs.next()  # reserved after our spare
    taken = [ours.next() for _ in range(100)]
    assert taken[:99] == list(range(first + 1, first + 100))
    assert first + 100 <= taken[99] < other  # the spare: reserved before the other engine's block


def test_a_spare_block_older_than_the_block_age_is_not_used(store):
    from brokerflow.actors.rules import RunIds

    now = [0.0]
    ids = RunIds(store.runs, block=100, max_age_s=1.0, clock=lambda: now[0])
    early = ids.next()
    assert ids.wait_spare()
    other = RunIds(store.runs, block=100, prefetch=False).next()
    now[0] = 2.0
    assert ids.next() > other > early  # a fresh block, not the old spare
