"""Many clients on one pid: the worker's mailbox applies their commands one at a time.

``counter``'s ``step`` is a self-loop, so every EVENT records exactly one history step whose
breadcrumb value is the value the client sent: the history is the log of what was applied.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from brokerflow.api.client import ApiClient

CLIENTS, EVENTS = 8, 20


def send_events(endpoint: str, token: str, pid: str, client: int, barrier: threading.Barrier) -> list[dict]:
    """One client, its own REQ socket: ``EVENTS`` steps, each waiting for its reply."""
    replies = []
    with ApiClient(endpoint, token, timeout_ms=20_000) as api:
        barrier.wait(timeout=10)
        for seq in range(EVENTS):
            replies.append(api.call("EVENT", {"pid": pid, "name": "step",
                                              "input": {"value": f"c{client}-{seq}", f"last_{client}": seq}}))
    return replies


def test_eight_clients_on_one_pid_apply_every_event_once_in_order(running):
    endpoint, token = running.engine.api_endpoint, running.reader
    pid = running.api.call("START", {"name": "counter"})["pid"]
    barrier = threading.Barrier(CLIENTS)
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(send_events, endpoint, token, pid, c, barrier) for c in range(CLIENTS)]
        replies = {c: f.result(timeout=60) for c, f in enumerate(futures)}

    history = running.api.call("HISTORY", {"pid": pid, "name": "h1"})["history"]
    assert len(history) == 1 + CLIENTS * EVENTS
    assert [step["id"] for step in history] == [f"h{i}" for i in range(1, len(history) + 1)]
    assert history[0]["value"] is None and history[-1]["status"] == "active"
    assert all(step["status"] == "done" for step in history[1:-1])
    values = [step["value"] for step in history[1:]]
    assert sorted(values) == sorted(f"c{c}-{s}" for c in range(CLIENTS) for s in range(EVENTS))  # each once
    for client in range(CLIENTS):
        mine = [v for v in values if v.startswith(f"c{client}-")]
        assert mine == [f"c{client}-{s}" for s in range(EVENTS)]  # in the client's order
        # each reply is the state right after that client's event: its own value is the last step
        for seq, reply in enumerate(replies[client]):
            assert reply["history"][-1]["value"] == f"c{client}-{seq}"
            assert reply["history"][-1]["id"] == history[values.index(f"c{client}-{seq}") + 1]["id"]
            assert reply["output"][f"last_{client}"] == seq
    output = running.api.call("AVAILABLE_EVENTS", {"pid": pid})["output"]
    assert {k: v for k, v in output.items() if k.startswith("last_")} == {
        f"last_{c}": EVENTS - 1 for c in range(CLIENTS)}


def test_concurrent_commands_on_different_pids_do_not_mix(running):
    endpoint, token = running.engine.api_endpoint, running.reader
    pids = [running.api.call("START", {"name": "counter"})["pid"] for _ in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS)
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(send_events, endpoint, token, pid, c, barrier) for c, pid in enumerate(pids)]
        for future in futures:
            future.result(timeout=60)
    for client, pid in enumerate(pids):
        history = running.api.call("HISTORY", {"pid": pid, "name": "h1"})["history"]
        assert [s["value"] for s in history[1:]] == [f"c{client}-{s}" for s in range(EVENTS)]
