"""serve --replay: what the live stream lost is fetched from the journal, every event runs once.

The journal and the replay endpoint are the real ones (``bus/journal.py``,
``bus/replay_server.py``); the live stream is a plain PUB socket that sends some of the
journaled events and not others, which is exactly what a dropped connection or a full
high-water mark looks like to the engine.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import msgpack
import pytest
import zmq

from brokerflow.bus.journal import Journal
from brokerflow.bus.replay_server import ReplayServer
from brokerflow.storage import open_store
from tests.conftest import wait_until
from tests.runtime.conftest import notify

TOPIC = b"trade.push"


class Upstream:
    """A journaling publisher made of parts: a journal file, its replay endpoint, a PUB socket."""

    def __init__(self, tmp_path, source: str = "mt5") -> None:
        self.source, self.path = source, str(tmp_path / f"{source}-journal.db")
        self.context = zmq.Context()
        self.pub = self.context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, 100)  # a burst overflows it, as a busy trading engine's PUB does
        self.pub.setsockopt(zmq.SNDBUF, 64 * 1024)  # and the kernel's buffer does not absorb the burst
        self.pub.bind("tcp://127.0.0.1:0")
        self.endpoint = self.pub.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.journal = Journal(self.path)
        self.server = ReplayServer("tcp://127.0.0.1:0", self.path, self.context)
        self.replay_endpoint = self.server.endpoint
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.server.run, args=(self._stop,), daemon=True)
        self._thread.start()
        self.next_seq = 1

    def deposit(self, login: int = 1001, live: bool = True) -> int:
        """Journal the next deposit; send it live unless ``live`` is False (a lost frame)."""
        seq = self.next_seq
        self.next_seq += 1
        payload = msgpack.packb({"event": "EV_RECORD_ADD", "source": self.source, "seq": seq,
                                 "record": {"order": seq, "login": login, "cmd": "OP_BALANCE_IN", "profit": 10.0}})
        self.journal.append([(self.source, seq, TOPIC, payload)], int(time.time() * 1000))
        if live:
            self.pub.send_multipart([TOPIC, payload])
        return seq

    def burst(self, count: int, login: int = 1001, pad_bytes: int = 2000) -> int:
        """Journal ``count`` deposits in one commit, then send them as fast as the socket takes
        them (far faster than any engine): the last seq. Each carries a ``pad_bytes`` comment, so
        the burst is larger than what the kernel's socket buffers absorb."""
        rows = []
        for _ in range(count):
            seq = self.next_seq
            self.next_seq += 1
            rows.append((self.source, seq, TOPIC, msgpack.packb({
                "event": "EV_RECORD_ADD", "source": self.source, "seq": seq,
                "record": {"order": seq, "login": login, "cmd": "OP_BALANCE_IN", "profit": 10.0,
                           "comment": "x" * pad_bytes}})))
        self.journal.append(rows, int(time.time() * 1000))
        for _, _, topic, payload in rows:
            self.pub.send_multipart([topic, payload])
        return self.next_seq - 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.close()
        self.journal.close()
        self.pub.close(linger=0)
        self.context.term()


@pytest.fixture
def upstream(tmp_path):
    made = Upstream(tmp_path)
    yield made
    made.close()


def replayed_engine(make_runtime, upstream, **changes):
    runtime = make_runtime(events_bind=(), events_connect=(upstream.endpoint,),
                           replay=(upstream.replay_endpoint,), **changes)
    rule = runtime.rule("deposit.created", [notify("deposit {{trade.order}}")])
    return runtime, rule


def live_subscribed(runtime, upstream) -> None:
    """Send probes until one arrives (the SUB connects to our PUB asynchronously)."""
    def arrived() -> bool:
        upstream.deposit()
        return runtime.stats()["bus"]["received"] > 0
    wait_until(arrived, timeout_s=10, interval_s=0.05)


def wait_runs(runtime, rule, count: int, timeout_s: float = 45) -> Counter:
    """Wait until ``rule`` has runs for ``count`` events; on timeout, say where delivery stands."""
    try:
        wait_until(lambda: len(orders(runtime, rule)) == count, timeout_s=timeout_s, interval_s=0.05)
    except AssertionError:
        got = orders(runtime, rule)
        recovery = runtime.engine.ingress._recovery
        missing = sorted(set(range(1, count + 1)) - {int(key.rsplit(":", 1)[1]) for key in got})[:20]
        state = {"missing": missing, "cursors": recovery.cursors.by_source, "bus": runtime.stats()["bus"],
                 "endpoints": [(e.address, e.asked, e.failures, e.answered) for e in recovery.client.endpoints]}
        raise AssertionError(f"runs for {len(got)} of {count} events after {timeout_s}s: {state}") from None
    return orders(runtime, rule)


def orders(runtime, rule) -> Counter:
    """How many runs the rule logged per event id (the whole run log, page by page)."""
    found: Counter = Counter()
    before = {}
    while True:
        runs = runtime.runs(rule_id=rule["id"], limit=1000, **before)
        found.update(run["event_id"] for run in runs)
        if len(runs) < 1000:
            return found
        before = {"before_id": runs[-1]["id"]}


def test_events_lost_live_are_fetched_from_the_journal_and_each_runs_once(make_runtime, upstream):
    runtime, rule = replayed_engine(make_runtime, upstream)
    live_subscribed(runtime, upstream)
    for index in range(60):
        upstream.deposit(live=index % 7 not in (2, 3))  # two of every seven never arrive live
    last = upstream.deposit()
    counts = wait_runs(runtime, rule, last)
    assert set(counts) == {f"mt5:{seq}" for seq in range(1, last + 1)} and set(counts.values()) == {1}
    bus = runtime.stats()["bus"]
    assert bus["replayed"] >= 17 and bus["gaps_filled"] >= 1 and bus["gaps_open"] == 0


def test_what_was_published_while_the_engine_was_down_runs_after_the_restart(make_runtime, upstream):
    runtime, rule = replayed_engine(make_runtime, upstream)
    live_subscribed(runtime, upstream)
    wait_until(lambda: len(orders(runtime, rule)) == upstream.next_seq - 1)
    runtime.stop()
    while_down = [upstream.deposit() for _ in range(40)]
    runtime.start()
    last = upstream.deposit()
    wait_until(lambda: len(orders(runtime, rule)) == last, timeout_s=20)
    counts = orders(runtime, rule)
    assert all(counts[f"mt5:{seq}"] == 1 for seq in [*while_down, last])
    assert set(counts.values()) == {1}
    assert runtime.stats()["bus"]["replayed"] >= len(while_down)


def test_the_checkpoint_follows_the_logged_runs_and_is_stored_per_partition(make_runtime, upstream):
    runtime, rule = replayed_engine(make_runtime, upstream, partitions=4)
    live_subscribed(runtime, upstream)
    last = max(upstream.deposit() for _ in range(25))
    wait_until(lambda: len(orders(runtime, rule)) == last)
    store = runtime.engine.store

    def stored() -> dict:
        return store.runs.checkpoints(range(4)).get("mt5", {})
    wait_until(lambda: stored() == {0: last, 1: last, 2: last, 3: last}, timeout_s=10)


def test_a_restart_after_a_lagging_checkpoint_runs_nothing_twice(make_runtime, upstream):
    """The crash window: runs logged past the stored checkpoint are replayed, never run again."""
    runtime, rule = replayed_engine(make_runtime, upstream)
    live_subscribed(runtime, upstream)
    last = max(upstream.deposit() for _ in range(30))
    wait_until(lambda: len(orders(runtime, rule)) == last)
    runtime.stop()
    with open_store(runtime.settings.db_url) as store:  # as if the engine had died right after its 5th event
        store.runs.write_rows([], [("mt5", p, 5) for p in range(runtime.settings.partitions)])
    runtime.start()
    after = upstream.deposit()
    wait_until(lambda: len(orders(runtime, rule)) == after, timeout_s=20)
    assert set(orders(runtime, rule).values()) == {1}
    # Events 6..31 were replayed from the lagging checkpoint; their runs were logged, so their
    # notifications are not sent again: only the new event notifies after the restart.
    wait_until(lambda: runtime.notifications())
    assert [n["message"] for n in runtime.notifications() if n.get("rule_id") == rule["id"]] == [f"deposit {after}"]
    assert runtime.stats()["bus"]["replayed"] >= after - 1 - 5


def test_after_a_restart_replayed_events_count_once_in_an_aggregate_window(make_runtime, upstream):
    """The crash window and a window: events 6..30 come back from the journal after the restart,
    but the window reloaded from storage holds them already; the 40th deposit is the 40th counted."""
    runtime, every = replayed_engine(make_runtime, upstream)
    fortieth = runtime.rule("deposit.created", [notify("forty {{trade.order}}")], name="the fortieth", conditions=[
        {"agg": "count", "window_s": 3600, "by": "trade.login", "op": "==", "value": 40}])
    live_subscribed(runtime, upstream)
    while upstream.next_seq <= 30:
        upstream.deposit()
    wait_runs(runtime, every, 30)
    runtime.stop()  # a clean stop: the rule state writer stores the window
    with open_store(runtime.settings.db_url) as store:  # as if the engine had died right after its 5th event
        store.runs.write_rows([], [("mt5", p, 5) for p in range(runtime.settings.partitions)])
    runtime.start()
    while upstream.next_seq <= 45:
        upstream.deposit()
    wait_runs(runtime, every, 45)
    # Counted twice, the replayed events would have reached 40 at mt5:15 and gone past it.
    assert orders(runtime, fortieth) == Counter({"mt5:40": 1})


def test_a_replay_endpoint_that_never_answers_does_not_stall_live_events(make_runtime, tmp_path):
    context = zmq.Context()
    silent = context.socket(zmq.ROUTER)  # takes requests, never answers
    silent.setsockopt(zmq.LINGER, 0)
    silent.bind("tcp://127.0.0.1:0")
    upstream = Upstream(tmp_path, source="crm")
    try:
        runtime = make_runtime(events_bind=(), events_connect=(upstream.endpoint,),
                               replay=(silent.getsockopt(zmq.LAST_ENDPOINT).decode(),))
        rule = runtime.rule("deposit.created", [notify("x")])
        live_subscribed(runtime, upstream)
        last = max(upstream.deposit() for _ in range(20))
        wait_until(lambda: len(orders(runtime, rule)) >= last - 1, timeout_s=15)
    finally:
        upstream.close()
        silent.close(linger=0)
        context.term()


def test_a_source_first_heard_of_mid_stream_is_run_from_the_start_of_its_journal(make_runtime, upstream):
    runtime, rule = replayed_engine(make_runtime, upstream)
    missed = [upstream.deposit(live=False) for _ in range(5)]  # before the engine heard of the source
    live_subscribed(runtime, upstream)
    last = upstream.deposit()
    wait_until(lambda: len(orders(runtime, rule)) == last, timeout_s=20)
    counts = orders(runtime, rule)
    assert all(counts[f"mt5:{seq}"] == 1 for seq in missed) and set(counts.values()) == {1}


def test_an_overload_burst_with_several_rules_loses_nothing_and_the_stats_show_the_recovery(make_runtime, upstream):
    # A receive high-water mark of 20 and a ceiling of 50 events: 5,000 events sent in a tight
    # loop overflow the SUB socket, as a heavy rule set under a fast burst does at the defaults.
    runtime, first = replayed_engine(make_runtime, upstream, events_hwm=20, ingress_max_inflight=50)
    others = [runtime.rule("deposit.created", [notify(f"rule {n}")]) for n in (2, 3)]
    live_subscribed(runtime, upstream)
    last = upstream.burst(5000)
    rules = [first, *others]
    wait_until(lambda: all(len(orders(runtime, rule)) == last for rule in rules), timeout_s=60, interval_s=0.2)
    for rule in rules:
        assert set(orders(runtime, rule).values()) == {1}
    bus = runtime.stats()["bus"]
    assert bus["replayed"] > 0 and bus["gaps_filled"] > 0 and bus["gaps_open"] == 0
