"""Ten thousand processes are ten thousand rows, not ten thousand threads.

Most STARTs go through the engine's in-process process handler (what the API calls) to keep
the test fast; a share goes over REP from several clients. The live cap is small, so almost
every process is passivated by the time the test picks random ones to move on.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import Future

import pytest

from brokerflow.api.client import ApiClient

TOTAL, OVER_REP, REP_CLIENTS = 10_000, 2_000, 4
THREAD_BOUND = 60
LIVE_CAP = 400


def start_over_rep(endpoint: str, token: str, count: int, pids: list[str]) -> None:
    with ApiClient(endpoint, token, timeout_ms=30_000) as api:
        for _ in range(count):
            pids.append(api.call("START", {"name": "counter"})["pid"])


@pytest.mark.timeout(240)
def test_ten_thousand_processes_keep_the_thread_count_bounded_and_each_answers(start_engine):
    running = start_engine(process_live_cap=LIVE_CAP)
    running.add_flows()
    engine = running.engine
    baseline = threading.active_count()
    rep_pids: list[str] = []
    clients = [threading.Thread(target=start_over_rep, args=(engine.api_endpoint, running.reader,
                                                             OVER_REP // REP_CLIENTS, rep_pids))
               for _ in range(REP_CLIENTS)]
    for client in clients:
        client.start()
    handle = engine.services.process_handler
    futures: list[Future] = []
    most = 0
    for index in range(TOTAL - OVER_REP):
        futures.append(handle("START", {"name": "counter"}, None))
        if index % 500 == 0:
            most = max(most, threading.active_count())
    local_pids = []
    for future in futures:
        local_pids.append(future.result(timeout=120)["pid"])
        most = max(most, threading.active_count())
    for client in clients:
        client.join(timeout=120)
    most = max(most, threading.active_count())

    pids = local_pids + rep_pids
    assert len(set(pids)) == TOTAL
    assert most < THREAD_BOUND
    assert most <= baseline + REP_CLIENTS  # the engine itself started no thread at all
    workers = running.stats_of("process")
    assert sum(w["active"] for w in workers) <= LIVE_CAP
    assert sum(w["passivations"] for w in workers) >= TOTAL - LIVE_CAP

    door = running.door("rep")
    picked = [*pids[:10], *random.Random(4).sample(pids, 40), *rep_pids[:5]]  # the first ones: long passivated
    for pid in picked:
        body = door.ok("EVENT", pid=pid, name="step", input={"value": "moved"})
        assert [s["value"] for s in body["history"]] == [None, "moved"]
    assert threading.active_count() < THREAD_BOUND
    assert sum(w["activations"] for w in running.stats_of("process")) >= 10  # loaded back from storage
