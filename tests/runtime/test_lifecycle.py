"""Stopping and starting again: a clean stop loses no run; a restart carries on where it was."""

from __future__ import annotations

import threading
import time

from brokerflow.storage import open_store
from tests.conftest import wait_until
from tests.runtime.conftest import notify, webhook

EVENTS = 300


def test_a_clean_stop_loses_no_run(runtime, receiver):
    rule = runtime.rule("deposit.created", [notify("{{trade.order}}", manager_id=7), webhook(receiver.url("/n"))])
    for order in range(EVENTS):
        runtime.publish("trade.push", {"order": order, "login": 1001, "cmd": "OP_BALANCE_IN", "profit": 1.0})
    wait_until(lambda: runtime.stats()["bus"]["received"] == EVENTS)  # delivered; most still in flight
    started = time.monotonic()
    runtime.stop()
    assert time.monotonic() - started < runtime.settings.stop_timeout_s
    with open_store(runtime.settings.db_url) as store:
        runs = store.runs.list(rule_id=rule["id"], limit=1000)
        assert len(runs) == EVENTS
        assert {run["status"] for run in runs} == {"success"}
        assert len({run["event_id"] for run in runs}) == EVENTS
        assert store.runs.counts()["logged"] == EVENTS
    assert len(receiver.requests) == EVENTS


def test_a_restarted_engine_keeps_rules_reference_data_counters_and_run_ids(runtime):
    rule = runtime.rule("deposit.created", [notify("{{customer.email}}")])
    runtime.upsert("Customer", {"id": 501, "email": "changed@example.com"})
    runtime.deposit(1001, 10)
    first = runtime.wait_run(rule)
    runtime.restart()
    assert runtime.stats()["runs"] == {"logged": 1, "success": 1, "failed": 0, "skipped": 0, "suppressed": 0}
    runtime.deposit(1001, 10)
    second = runtime.wait_runs(2, rule_id=rule["id"])[0]
    assert second["id"] > first["id"]
    assert second["actions"][0]["recipients"] == [8]
    runtime.settle()
    assert runtime.notifications()[-1]["message"] == "changed@example.com"
    assert runtime.stats()["runs"]["logged"] == 2


def _checkpointers() -> int:
    return sum(thread.name == "brokerflow-checkpointer" for thread in threading.enumerate())


def test_the_wal_is_checkpointed_on_a_thread_of_its_own_unless_switched_off(make_runtime):
    before = _checkpointers()
    running = make_runtime(world=False, checkpoint_interval_s=0.05)
    assert _checkpointers() == before + 1
    make_runtime(world=False, checkpoint_interval_s=0)
    assert _checkpointers() == before + 1
    running.stop()
    wait_until(lambda: _checkpointers() == before)
