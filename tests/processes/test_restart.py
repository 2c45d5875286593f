"""A restarted engine (a new Engine on the same SQLite file) continues every process where it was."""

from __future__ import annotations


def test_processes_mid_subflow_continue_after_a_restart_with_full_history(start_engine, sqlite_url):
    first = start_engine(db_url=sqlite_url)
    first.add_flows()
    door = first.door("rep", token=first.admin)
    in_child = door.ok("START", name="onboarding", input={"email": "a@b.c"})["pid"]
    door.ok("EVENT", pid=in_child, name="next")
    door.ok("EVENT", pid=in_child, name="submit")  # kyc_check.upload
    in_grandchild = door.ok("START", name="onboarding")["pid"]
    for event in ("next", "submit", "uploaded"):  # doc_review.look
        door.ok("EVENT", pid=in_grandchild, name=event)
    ended = door.ok("START", name="counter")["pid"]
    door.ok("ABORT", pid=ended)
    before = {pid: door.ok("AVAILABLE_EVENTS", pid=pid) for pid in (in_child, in_grandchild)}
    first.close()

    second = start_engine(db_url=sqlite_url)
    door = second.door("rep", token=second.admin)
    for pid, was in before.items():
        now = door.ok("AVAILABLE_EVENTS", pid=pid)
        assert (now["flow"], now["state"], now["history"], now["output"], now["events"]) == (
            was["flow"], was["state"], was["history"], was["output"], was["events"])

    body = door.ok("EVENT", pid=in_child, name="uploaded")
    assert (body["flow"], body["state"]) == ("doc_review", "look")
    assert body["history"][:-1] == [{**s, "status": "done"} for s in before[in_child]["history"]]
    assert door.ok("EVENT", pid=in_child, name="accept")["result"] == "EXTERNAL_ENTER"
    assert door.ok("EVENT", pid=in_child, name="return") == {"pid": in_child, "result": "END"}

    assert door.ok("EXIT", pid=in_grandchild)["state"] == "upload"  # the stack survived too
    assert door.ok("ROLLBACK", pid=in_grandchild, name="h2")["state"] == "docs"
    assert door.ok("HISTORY", pid=in_grandchild, name="h1")["step"]["state"] == "personal"
    door.fail("EVENT", "PROCESS_ENDED", 409, pid=ended, name="step")


def test_a_restarted_engine_keeps_pinned_flow_versions(start_engine, sqlite_url):
    first = start_engine(db_url=sqlite_url)
    first.add_flows()
    pid = first.api.call("START", {"name": "counter"})["pid"]
    first.close()
    second = start_engine(db_url=sqlite_url)
    counter = {"name": "counter", "initial": "counting",
               "states": {"counting": {"on": {"halt": "stopped"}}, "stopped": {"final": True}}}
    second.api.call("MngUpdateFlow", {"flow": counter})
    door = second.door("rep")
    assert door.ok("AVAILABLE_EVENTS", pid=pid)["events"] == ["step", "stop"]
    assert door.ok("EVENT", pid=pid, name="stop") == {"pid": pid, "result": "END"}
