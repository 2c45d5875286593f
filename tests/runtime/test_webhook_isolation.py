"""A hanging webhook endpoint holds up nothing but its own runs."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_until
from tests.runtime.conftest import SLOW_HANG_S, Receiver, notify, webhook


def test_a_slow_webhook_does_not_delay_a_notification_of_another_rule(runtime, receiver):
    slow = runtime.rule("trade.opened", [webhook(receiver.url("/slow"), timeout_ms=10_000)])
    quick = runtime.rule("deposit.created", [notify("deposit", manager_id=7)])
    runtime.publish("trade.push", {"order": 1, "login": 1001, "cmd": "OP_BUY", "volume": 100})
    wait_until(lambda: receiver.arrived)  # the slow endpoint now holds the request
    sent = time.monotonic()
    runtime.deposit(1001, 10)
    wait_until(runtime.notifications, timeout_s=SLOW_HANG_S)
    assert time.monotonic() - sent < 1.5  # well under the hang, with room for a loaded machine
    assert runtime.wait_run(quick)["status"] == "success"
    assert runtime.runs(rule_id=slow["id"]) == [] and receiver.requests == []  # still hanging
    receiver.release.set()
    assert runtime.wait_run(slow)["status"] == "success"


def test_a_slow_webhook_does_not_delay_another_action_of_the_same_kind(runtime, receiver):
    rule = runtime.rule("trade.opened", [webhook(receiver.url("/slow"))])
    fast = runtime.rule("deposit.created", [webhook(receiver.url("/fast"))])
    runtime.publish("trade.push", {"order": 1, "login": 1001, "cmd": "OP_BUY"})
    wait_until(lambda: receiver.arrived)
    runtime.deposit(1001, 10)
    assert runtime.wait_run(fast, timeout_s=SLOW_HANG_S - 1)["status"] == "success"
    receiver.release.set()
    runtime.wait_run(rule)


@pytest.fixture
def second_host():
    """A receiver on another loopback address: another host for the per-host cap."""
    server = Receiver(host="127.0.0.2")
    yield server
    server.close()


def test_one_hanging_host_cannot_take_the_whole_pool(runtime, receiver, second_host):
    per_host = max(1, runtime.settings.webhook_workers // 4)
    stuck = runtime.rule("trade.opened", [webhook(receiver.url("/slow"))])
    other = runtime.rule("deposit.created", [webhook(second_host.url("/other"))])
    for order in range(runtime.settings.webhook_workers + 2):  # more than the pool
        runtime.publish("trade.push", {"order": order, "login": 1001, "cmd": "OP_BUY"})
    wait_until(lambda: len(receiver.arrived) == per_host)
    runtime.deposit(1001, 10)
    assert runtime.wait_run(other, timeout_s=SLOW_HANG_S - 1)["status"] == "success"
    assert len(receiver.arrived) == per_host  # the rest wait in their host's queue
    receiver.release.set()
    runtime.wait_runs(runtime.settings.webhook_workers + 2, rule_id=stuck["id"])
