"""Retention on a running engine: old runs and notifications go, in batches, while the engine keeps logging."""

from __future__ import annotations

import threading

from brokerflow.app.retention import DAY_MS, Retention
from brokerflow.clock import now_ms
from tests.runtime.conftest import make_runtime, notify  # noqa: F401 - fixtures


def test_a_pass_trims_what_is_older_than_the_retention_and_the_run_log_goes_on(make_runtime):  # noqa: F811
    runtime = make_runtime(runs_retain_days=2.0)
    retention = next(e for e in runtime.engine.extensions if isinstance(e, Retention))
    retention.batch_rows, retention.pause_s = 3, 0.0
    rule = runtime.rule("deposit.created", [notify("hi")], name="notify")
    for amount in range(1, 8):
        runtime.deposit(1001, amount)
    runtime.wait_runs(7, rule_id=rule["id"])
    store = runtime.engine.store
    assert retention.trim_once(now_ms()) == {"runs": 0, "notifications": 0}  # nothing is two days old yet
    later = now_ms() + 2 * DAY_MS + 1000
    notifications = len(store.notifications.list(limit=1000))
    assert notifications >= 7
    assert retention.trim_once(later) == {"runs": 7, "notifications": notifications}
    assert runtime.runs() == [] and store.notifications.list() == []
    runtime.deposit(1001, 8)
    assert len(runtime.wait_runs(1, rule_id=rule["id"])) == 1
    assert retention.trimmed["runs"] == 7


def test_zero_keeps_everything_and_starts_no_thread(make_runtime):  # noqa: F811
    runtime = make_runtime(world=False, runs_retain_days=0.0)
    retention = next(e for e in runtime.engine.extensions if isinstance(e, Retention))
    assert retention._thread is None
    assert not any(t.name == "brokerflow-retention" for t in threading.enumerate())
