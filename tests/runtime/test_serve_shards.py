"""``brokerflow serve --shards 2`` as users run it: a real parent, two real shard processes.

Events go to the parent's public endpoint, management calls to its API broker; whatever shard
owns a customer, its events run once, a rule added through the API fires for every shard's
customers, ``MngGetStats`` answers for both, a shard killed with ``kill -9`` is started again
(and with ``--replay`` behind a relay loses nothing), and SIGTERM stops everything with 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from brokerflow.api.client import ApiClient
from brokerflow.bus.publisher import Publisher
from brokerflow.workflow.partitions import partition_of
from tests.conftest import tcp_endpoint, wait_until
from tests.relayed import RelayedUpstream, stop_serve

CLI = [sys.executable, "-m", "brokerflow"]
pytestmark = pytest.mark.timeout(240)


def shard_of(customer: int) -> int:
    return partition_of(f"c:{customer}", 64) % 2


def customers_of_both(count: int) -> list[int]:
    chosen = list(range(1, count + 1))
    assert {shard_of(c) for c in chosen} == {0, 1}
    return chosen


class Sharded:
    """``serve --shards 2`` on a SQLite file; ``stop`` sends SIGTERM and returns the exit code."""

    def __init__(self, tmp_path, *extra: str) -> None:
        self.db = f"sqlite:///{tmp_path / 'sharded.db'}"
        self.events, self.api, self.pub = tcp_endpoint(), tcp_endpoint(), tcp_endpoint()
        self.log_path = tmp_path / "serve.log"
        self.token = subprocess.run([*CLI, "token", "create", "--role", "SESSION_ADMIN", "--db", self.db],
                                    capture_output=True, text=True, check=True, timeout=60).stdout.strip()
        env = {**os.environ, "BROKERFLOW_NO_HTTP": "1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*CLI, "serve", "--shards", "2", "--db", self.db, "--events-bind", self.events,
                                          "--api-bind", self.api, "--pub-bind", self.pub, *extra],
                                         env=env, stdout=log, stderr=subprocess.STDOUT)
        self.client = ApiClient(self.api, self.token, timeout_ms=3000)

        def answers() -> bool:
            assert self.proc.poll() is None, self.log()
            try:
                return len(self.client.call("MngGetStats").get("shards", ())) == 2
            except TimeoutError:
                self.client.close()
                self.client = ApiClient(self.api, self.token, timeout_ms=3000)
                return False
        wait_until(answers, timeout_s=40, interval_s=0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def shard_pids(self) -> list[int]:
        return [shard["pid"] for shard in self.client.call("MngGetStats")["shards"]]

    def runs(self, rule_id: int) -> Counter:
        found: Counter = Counter()
        before = None
        while True:
            params = {"rule_id": rule_id, "limit": 1000, **({"before_id": before} if before else {})}
            runs = self.client.call("MngGetWorkflowRunLog", params)["runs"]
            found.update(run["event_id"] for run in runs)
            if len(runs) < 1000:
                return found
            before = runs[-1]["id"]

    def stop(self) -> int:
        return stop_serve(self.proc, self.client)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def add_deposit_rule(serve: Sharded) -> dict:
    serve.client.call("MngUpsertGroup", {"record": {"group": "g", "brand": "alpha", "currency": "USD"}})
    return serve.client.call("MngAddWorkflowRule", {"rule": {
        "name": "every deposit", "brand": "alpha", "trigger": "deposit.created",
        "actions": [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}]}})["rule"]


def check_processes_live_in_their_pid_s_shard(serve: Sharded) -> None:
    """START goes round-robin; each shard makes pids it owns, and the broker sends a pid's commands there."""
    serve.client.call("MngAddFlow", {"flow": {"name": "counter", "initial": "counting", "states": {
        "counting": {"on": {"step": "counting", "stop": "stopped"}}, "stopped": {"final": True}}}})
    pids = [serve.client.call("START", {"name": "counter"})["pid"] for _ in range(8)]
    assert {partition_of(f"p:{pid}", 64) % 2 for pid in pids} == {0, 1}  # both shards started some
    for pid in pids:
        serve.client.call("EVENT", {"pid": pid, "name": "step"})
        serve.client.call("EVENT", {"pid": pid, "name": "stop"})


def test_two_shards_run_each_event_once_share_rules_and_stats_and_stop_on_sigterm(tmp_path):
    serve = Sharded(tmp_path)
    publisher = Publisher(serve.events, source="mt5", linger_ms=0)
    shard_pids: list[int] = []
    try:
        assert publisher.wait_subscribed(timeout_s=10)
        customers = customers_of_both(12)
        for customer in customers:
            publisher.publish("customer.push", {"id": customer, "brand": "alpha"}, event="EV_RECORD_ADD")
            publisher.publish("account.push", {"login": 100 + customer, "group": "g", "customer_id": customer},
                              event="EV_RECORD_ADD")
        rule = add_deposit_rule(serve)  # through one shard's API; the other learns it over the control channel
        probes = {0: next(c for c in customers if shard_of(c) == 0), 1: next(c for c in customers if shard_of(c) == 1)}

        def fired_on_both() -> bool:
            for customer in probes.values():
                record = {"order": 1, "login": 100 + customer, "cmd": "OP_BALANCE_IN", "profit": 1.0}
                publisher.publish("trade.push", record, "EV_RECORD_ADD", id=f"probe-{customer}-{time.monotonic()}")
            seen = {event_id.split("-")[1] for event_id in serve.runs(rule["id"])}
            return {str(c) for c in probes.values()} <= seen
        wait_until(fired_on_both, timeout_s=15, interval_s=0.2)
        for round_ in range(3):
            for customer in customers:
                publisher.publish("trade.push", {"order": 10 + round_, "login": 100 + customer, "cmd": "OP_BALANCE_IN",
                                                 "profit": 5.0}, event="EV_RECORD_ADD", id=f"d-{customer}-{round_}")
        expected = {f"d-{c}-{r}" for c in customers for r in range(3)}

        def all_ran() -> bool:
            return expected <= set(serve.runs(rule["id"]))
        wait_until(all_ran, timeout_s=20, interval_s=0.2)
        counts = serve.runs(rule["id"])
        assert all(counts[event_id] == 1 for event_id in expected)
        assert all(count == 1 for count in counts.values())
        sent = publisher.next_seq - 1

        def stats_whole() -> dict | None:
            body = serve.client.call("MngGetStats")
            return body if body["bus"]["received"] == 2 * sent and body["bus"]["not_owned"] == sent else None
        body = wait_until(stats_whole, timeout_s=10, interval_s=0.2)
        assert [shard["index"] for shard in body["shards"]] == [0, 1]
        assert {actor["name"].split("/")[0] for actor in body["actors"]} == {"shard0", "shard1"}
        assert body["runs"]["logged"] >= len(expected) + 2
        shard_pids = serve.shard_pids()
        check_processes_live_in_their_pid_s_shard(serve)
    finally:
        publisher.close()
        code = serve.stop()
    assert code == 0, serve.log()
    assert shard_pids and not any(alive(pid) for pid in shard_pids)


def test_kill_9_of_a_shard_behind_a_relay_restarts_it_and_loses_nothing(tmp_path):
    relayed = RelayedUpstream(str(tmp_path / "journal.db"))
    serve = None
    try:
        relayed.wait_subscribed()
        serve = Sharded(tmp_path, "--events-connect", relayed.publish_endpoint, "--replay", relayed.replay_endpoint)
        customers = customers_of_both(20)
        for customer in customers:
            serve.client.call("MngUpsertAccount", {"record": {"login": 100 + customer, "group": "g",
                                                                "customer_id": customer}})
        rule = add_deposit_rule(serve)
        wait_until(lambda: len({s["index"] for s in serve.client.call("MngGetStats")["shards"]}) == 2)
        time.sleep(0.5)  # the rule's control message to the other shard: a fixed margin, then the stream starts

        total, victim = 1200, serve.shard_pids()[1]
        for order in range(1, total + 1):
            relayed.deposit(order, login=100 + customers[order % len(customers)])
            time.sleep(0.001)  # a steady 1,000 events/s or less, as a trading engine publishes
            if order == 400:
                wait_until(lambda: sum(serve.runs(rule["id"]).values()) >= 100, timeout_s=20, interval_s=0.1)
                os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in serve.shard_pids() and all(not s["stale"] for s in
                                                                     serve.client.call("MngGetStats")["shards"]),
                   timeout_s=30, interval_s=0.2)
        try:
            wait_until(lambda: sum(serve.runs(rule["id"]).values()) >= total, timeout_s=120, interval_s=0.5)
        except AssertionError:
            got = serve.runs(rule["id"])
            missing = sorted(set(range(1, total + 1)) - {int(key.rsplit(":", 1)[1]) for key in got})
            stats = serve.client.call("MngGetStats")
            raise AssertionError(f"{len(got)} of {total} events ran; missing {missing[:30]} ({len(missing)}); "
                                 f"bus {stats['bus']}; shards {stats.get('shards')}") from None
        counts = serve.runs(rule["id"])
        assert set(counts) == {f"mt5:{seq}" for seq in range(1, total + 1)}
        assert set(counts.values()) == {1}
        assert "starting it again" in serve.log_path.read_text(errors="replace")
    finally:
        if serve is not None:
            assert serve.stop() == 0, serve.log()
        relayed.close()
