"""``brokerflow bench --crash``: ``kill -9`` of ``serve --replay`` mid-stream; count lost and doubled runs.

Real processes all the way, as an operator deploys it: a trading engine's plain PUB (a child
process sending deposits without ``source``/``seq``, paced, each with its own ``id``) →
``brokerflow relay`` (journal, stamping, replay endpoint) → ``brokerflow serve --events-connect
--replay`` on a fresh SQLite file with one always-matching rule and one narrower rule. When half
the events are sent the engine gets ``SIGKILL``; the publisher goes on; after ``down_s`` the
engine is started again on the same database. Then:

- lost: events sent with no run of the always-matching rule;
- doubled: (event, rule) pairs with more than one run, over both rules;
- ready: restart → the management API answers; recovered: restart → the run log holds a run
  of the always-matching rule for every event sent before the restart;
- journaled: events in the relay's journal (what the relay got from the plain PUB).

The run log is read from the SQLite file directly (WAL: a reader never blocks the engine), and
the final counts after the engine stopped cleanly. It never asserts.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack

from brokerflow.app.benchengine import EngineUnderTest
from brokerflow.app.benchrelay import start_relay, stop_relay
from brokerflow.app.benchwire import free_port

__all__ = ["measure_crash"]

SOURCE = "bench-crash"
ACCOUNTS = 100


def _publish_deposits(endpoint: str, count: int, rate: float, sent: Any) -> None:
    """Runs in a child process: a plain PUB (binds; the relay dials it) sending deposits."""
    from brokerflow.bus.publisher import Publisher

    pack = msgpack.Packer(use_bin_type=True).pack
    # A long linger: flat out, the queue still holds tens of thousands of events when the loop ends,
    # and closing the socket must not drop them (that would be this benchmark's loss, not the relay's).
    with Publisher(endpoint, source="unused", bind=True, hwm=2_000_000, linger_ms=120_000) as publisher:
        publisher.wait_subscribed(timeout_s=30)
        started = time.perf_counter()
        for index in range(count):
            if rate > 0:
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            record = {"order": index + 1, "login": 1 + index % ACCOUNTS, "cmd": "OP_BALANCE_IN",
                      "profit": float(1 + index % 1000)}
            payload = {"event": "EV_RECORD_ADD", "record": record, "id": f"dep-{index}",
                       "ts": int(time.time() * 1000)}
            publisher.publish_raw([b"trade.push", pack(payload)])
            sent.value = index + 1
        time.sleep(0.5)  # let the last frames leave before the socket closes


def _load_world(engine: EngineUnderTest) -> tuple[int, int]:
    call = engine.client.call
    call("MngUpsertGroup", {"record": {"group": "g", "brand": "alpha", "currency": "USD"}})
    for login in range(1, ACCOUNTS + 1):
        call("MngUpsertAccount", {"record": {"login": login, "group": "g"}})
    every = call("MngAddWorkflowRule", {"rule": {
        "name": "every deposit", "brand": "alpha", "trigger": "deposit.created",
        "actions": [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}]}})["rule"]
    big = call("MngAddWorkflowRule", {"rule": {
        "name": "big deposit", "brand": "alpha", "trigger": "deposit.created",
        "conditions": [{"field": "amount_usd", "op": ">=", "value": 500}],
        "actions": [{"type": "customer.set_risk_level", "params": {"risk_level": "medium"}}]}})["rule"]
    return every["id"], big["id"]


def _read(db_path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def _runs_below(db_path: Path, rule_id: int, below: int) -> int:
    """Runs of ``rule_id`` for events ``dep-0`` .. ``dep-(below-1)``."""
    return _read(db_path, "SELECT COUNT(*) FROM runs WHERE rule_id = ? AND event_id LIKE 'dep-%' "
                          "AND CAST(substr(event_id, 5) AS INTEGER) < ?", (rule_id, below))[0][0]


def _wait_runs(db_path: Path, rule_id: int, below: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _runs_below(db_path, rule_id, below) >= below:
            return True
        time.sleep(0.1)  # a poll of the database, not a wait for an event
    return False


def _count(db_path: Path, journal: Path, count: int, every_id: int) -> dict[str, Any]:
    runs = _read(db_path, "SELECT event_id, rule_id FROM runs WHERE event_id LIKE 'dep-%'")
    pairs = Counter(runs)
    sent = {f"dep-{index}" for index in range(count)}
    every = {event_id for event_id, rule_id in pairs if rule_id == every_id}
    return {"runs": len(runs), "lost": len(sent - every), "doubled": sum(1 for n in pairs.values() if n > 1),
            "unknown": len(every - sent),
            "journaled": _read(journal, "SELECT COUNT(*) FROM events WHERE source = ?", (SOURCE,))[0][0]}


def measure_crash(count: int, folder: str, rate: float = 5000, kill_at: float = 0.5,
                  down_s: float = 2.0, timeout_s: float = 300) -> dict[str, Any]:
    upstream, publish = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    relay, replay = start_relay(folder, "relay-crash", ["--from", upstream], ["--publish-bind", publish],
                                source=SOURCE)
    engine: EngineUnderTest | None = None
    context = multiprocessing.get_context("spawn")
    sent = context.Value("q", 0, lock=False)
    result: dict[str, Any] = {"events": count, "rate": rate, "down_s": down_s}
    try:
        engine = EngineUnderTest(folder, "crash", events_connect=publish, replay=replay)
        db_path = Path(folder) / "crash.db"
        every_id, _big_id = _load_world(engine)
        publisher = context.Process(target=_publish_deposits, args=(upstream, count, rate, sent))
        publisher.start()
        while sent.value < count * kill_at and publisher.is_alive():
            time.sleep(0.01)  # polling the publisher's counter
        result["sent_at_kill"] = sent.value
        result["runs_at_kill"] = _runs_below(db_path, every_id, count)
        engine.kill()
        time.sleep(down_s)  # the engine stays down while the publisher goes on
        result["sent_at_restart"] = sent.value
        restarted = time.monotonic()
        engine.start()
        result["ready_s"] = round(time.monotonic() - restarted, 2)
        caught_up = _wait_runs(db_path, every_id, result["sent_at_restart"], timeout_s)
        result["recovered_s"] = round(time.monotonic() - restarted, 2) if caught_up else None
        publisher.join(timeout_s)
        _wait_runs(db_path, every_id, count, timeout_s)
        result["bus"] = {name: engine.stats()["bus"].get(name, 0)
                         for name in ("received", "replayed", "gaps_filled", "gaps_open", "replay_lost")}
    finally:
        if engine is not None:
            result["stop_exit_code"] = engine.stop()
        stop_relay(relay)
    result.update(_count(db_path, Path(folder) / "relay-crash.db", count, every_id))
    return result


def table(result: dict[str, Any]) -> str:
    recovered = "never" if result["recovered_s"] is None else f"{result['recovered_s']} s"
    return "\n".join([
        f"kill -9 run: {result['events']:,} events at {result['rate']:,.0f}/s through a relay into serve --replay",
        f"  killed after {result['sent_at_kill']:,} sent ({result['runs_at_kill']:,} runs logged); down "
        f"{result['down_s']} s; restarted after {result['sent_at_restart']:,} sent",
        f"  lost {result['lost']}  doubled {result['doubled']}  (runs {result['runs']:,}; journaled "
        f"{result['journaled']:,}; replayed {result['bus']['replayed']:,})",
        f"  restart → API ready {result['ready_s']} s; → caught up with everything sent before it {recovered}"])
