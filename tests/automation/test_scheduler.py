"""Deferred rules: each due time fires once — per tick, across restarts, with ticks racing.

Time is injected: the tests call ``tick(now_ms)`` (the ticker thread is off) with times after
the rule was saved, so nothing sleeps for minutes.
"""

from __future__ import annotations

import logging
import threading

from brokerflow.actors.modes import ModeRules
from brokerflow.actors.rules import RunIds
from brokerflow.actors.scheduler import Scheduler
from brokerflow.storage import open_store
from brokerflow.workflow.isotime import iso_ms, parse_iso_ms
from brokerflow.workflow.reference import ReferenceData
from tests.conftest import wait_until

HOUR_MS = 3_600_000
NOTE = [{"type": "notify.manager", "params": {"manager_id": 7, "message": "hourly check"}}]


def next_hour(ms: int) -> int:
    return (ms // HOUR_MS + 1) * HOUR_MS


def hourly(auto, **changes):
    rule = {"trigger": "interval", "schedule": {"cron": "0 * * * *"}, "run_as": 7, "actions": NOTE}
    rule.update(changes)
    added = auto.add_rule(**rule)
    stored = auto.engine.store.rules.get(added["id"])
    return added, next_hour(stored["updated_at"])


def test_a_cron_rule_fires_once_per_due_time_also_across_a_restart(auto):
    rule, due = hourly(auto)
    assert auto.automation.tick(due + 1_000) == [(rule["id"], due)]
    assert auto.automation.tick(due + 30_000) == []  # same due time, later tick
    runs = auto.wait_runs(1, rule_id=rule["id"])
    assert (runs[0]["trigger"], runs[0]["run_as"], runs[0]["status"]) == ("interval", 7, "success")
    assert runs[0]["event_id"] == f"schedule:{rule['id']}:{iso_ms(due)}"

    auto.restart()
    assert auto.automation.tick(due + 40_000) == []  # the restarted engine knows it fired
    assert auto.automation.tick(due + HOUR_MS + 500) == [(rule["id"], due + HOUR_MS)]
    assert len(auto.wait_runs(2, rule_id=rule["id"])) == 2


def test_after_downtime_the_latest_missed_due_time_fires_once_and_older_ones_are_skipped(auto, caplog):
    rule, due = hourly(auto)
    auto.automation.tick(due + 1_000)
    auto.restart()
    with caplog.at_level(logging.WARNING, logger="brokerflow.scheduler"):
        fired = auto.automation.tick(due + 5 * HOUR_MS + 600_000)  # down for five hours
    assert fired == [(rule["id"], due + 5 * HOUR_MS)]
    assert f"rule {rule['id']}: 4 missed due times" in caplog.text
    assert len(auto.wait_runs(2, rule_id=rule["id"])) == 2


def test_two_ticks_racing_fire_one_run(auto):
    rule, due = hourly(auto)
    results: list = []
    barrier = threading.Barrier(2)

    def tick() -> None:
        barrier.wait()
        results.append(auto.automation.tick(due + 2_000))

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results, key=len) == [[], [(rule["id"], due)]]
    auto.wait_runs(1, rule_id=rule["id"])
    auto.engine.drain(2.0)
    assert len(auto.runs(rule_id=rule["id"])) == 1


def test_two_engines_schedulers_racing_on_one_database_claim_each_due_time_once(sqlite_url):
    stores = [open_store(sqlite_url) for _ in range(2)]
    try:
        rule = stores[0].rules.add({"name": "r", "brand": "alpha", "trigger": "interval", "run_as": 7,
                                    "schedule": {"cron": "*/5 * * * *"}, "actions": NOTE}, by="test")
        due = next_hour(rule["updated_at"])
        schedulers = []
        for store in stores:
            rules = ModeRules()
            rules.reload([rule])
            schedulers.append(Scheduler(rules, store.schedules, store.meta, ReferenceData(), RunIds(store.runs)))
        barrier = threading.Barrier(2)
        won: list = []

        def tick(scheduler: Scheduler) -> None:
            barrier.wait()
            for step in range(12):
                won.extend(scheduler.tick(due + step * 300_000 + 1_000)[1])

        threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert sorted(won) == [(rule["id"], due + step * 300_000) for step in range(12)]
    finally:
        for store in stores:
            store.close()


def test_a_timestamp_rule_fires_once_when_its_time_has_come(auto):
    at = parse_iso_ms("2030-01-01T00:00:00Z")
    rule = auto.add_rule(trigger="timestamp", schedule={"at": iso_ms(at)}, run_as=7, actions=NOTE)
    assert auto.automation.tick(at - 1_000) == []
    assert auto.automation.tick(at + 1_000) == [(rule["id"], at)]
    assert auto.automation.tick(at + HOUR_MS) == []
    assert len(auto.wait_runs(1, rule_id=rule["id"])) == 1


def test_a_sweep_runs_once_per_matching_customer_of_the_brand(auto):
    rule, due = hourly(auto, conditions=[{"field": "customer.kyc_status", "op": "==", "value": "pending"}],
                       actions=[{"type": "notify.manager",
                                 "params": {"message": "KYC still pending for {{customer.email}}"}}])
    auto.automation.tick(due + 1_000)
    runs = auto.wait_runs(2, rule_id=rule["id"])
    assert sorted(r["event_id"].rsplit(":", 1)[1] for r in runs) == ["501", "503"]  # 601 is of brand beta
    assert {r["run_as"] for r in runs} == {7}
    messages = sorted(n["message"] for n in wait_until(lambda: len(auto.notifications()) >= 2 and auto.notifications()))
    assert messages == ["KYC still pending for ana@example.com", "KYC still pending for cy@example.com"]


def test_a_sweep_can_change_the_customers_it_finds(auto):
    rule, due = hourly(auto, conditions=[{"field": "customer.country", "op": "==", "value": "FR"}],
                       actions=[{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}])
    auto.automation.tick(due + 1_000)
    assert auto.wait_runs(1, rule_id=rule["id"])[0]["status"] == "success"
    wait_until(lambda: auto.engine.refs.customers[503].get("risk_level") == "high")
