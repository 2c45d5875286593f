"""Activation and passivation on the real engine, as MngGetStats shows them per process worker
(``active``: processes in memory, ``activations``: loaded back from storage, ``passivations``)."""

from __future__ import annotations

from tests.conftest import wait_until


def totals(running) -> dict[str, int]:
    workers = running.stats_of("process")
    return {key: sum(w[key] for w in workers) for key in ("active", "activations", "passivations", "failed")}


def test_idle_processes_are_passivated_without_any_traffic_and_come_back_on_demand(start_engine):
    running = start_engine(process_idle_s=0.2)
    running.add_flows()
    door = running.door("rep")
    pids = [door.ok("START", name="counter")["pid"] for _ in range(5)]
    assert totals(running)["active"] >= 1
    wait_until(lambda: totals(running)["passivations"] == 5)
    assert totals(running)["active"] == 0
    body = door.ok("EVENT", pid=pids[0], name="step", input={"value": "again"})
    assert [s["value"] for s in body["history"]] == [None, "again"]
    assert totals(running)["activations"] == 1


def test_the_live_cap_bounds_the_processes_in_memory(start_engine):
    running = start_engine(process_live_cap=8, process_workers=4)  # two per worker
    running.add_flows()
    door = running.door("rep")
    pids = [door.ok("START", name="counter")["pid"] for _ in range(40)]
    stats = totals(running)
    assert stats["active"] <= 8 and stats["active"] + stats["passivations"] == 40
    assert len(running.stats_of("process")) == 4
    for pid in pids[:5]:
        assert door.ok("EVENT", pid=pid, name="stop") == {"pid": pid, "result": "END"}
    stats = totals(running)  # the oldest were passivated long ago (a few of the five may still be live)
    assert 1 <= stats["activations"] <= 5 and stats["failed"] == 0


def test_refused_commands_do_not_count_as_worker_failures(running):
    door = running.door("rep")
    pid = door.ok("START", name="counter")["pid"]
    door.fail("EVENT", "EVENT_NOT_AVAILABLE", 409, pid=pid, name="fly")
    door.fail("EVENT", "NOT_FOUND", 404, pid="nope", name="step")
    door.fail("EVENT", "BAD_REQUEST", 400, pid=pid)
    door.ok("ABORT", pid=pid)
    door.fail("EXIT", "PROCESS_ENDED", 409, pid=pid)
    assert totals(running)["failed"] == 0
