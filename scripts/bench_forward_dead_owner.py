"""What a dead owner costs the forwarding of Workflow Machine commands (``app.clusterforward``).

The reviewer's scenario, with real ZeroMQ sockets on loopback and no engine: a member is killed
and, until its heartbeat ages out (~6 s), ``--rate`` requests/s keep coming for its partitions
(its endpoint is a ROUTER bound but never read), while one request in ten is for a live owner
(a ROUTER that answers at once). Prints one JSON line per round: how many live requests were
answered and how (success, or the error code), the slowest, and when the last dead one was
answered; never asserts (docs/scaling.md, "Changes, Workflow Machine commands, stats").

    python scripts/bench_forward_dead_owner.py [--rounds 3] [--rate 100] [--seconds 6]
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokerflow.app.clusterforward import Forwarder  # noqa: E402


def _event(pid: str) -> bytes:
    return json.dumps({"cmd": "EVENT", "token": "bf_bench", "params": {"pid": pid, "name": "next"}}).encode()


def _reply(future: Future) -> dict:
    result = future.result()
    return json.loads(result) if isinstance(result, bytes) else result


def one_round(rate: int, seconds: float) -> dict:
    context = zmq.Context.instance()
    dead, live = context.socket(zmq.ROUTER), context.socket(zmq.ROUTER)
    for sock in (dead, live):
        sock.setsockopt(zmq.LINGER, 0)
    owners = {1: f"tcp://127.0.0.1:{dead.bind_to_random_port('tcp://127.0.0.1')}",
              2: f"tcp://127.0.0.1:{live.bind_to_random_port('tcp://127.0.0.1')}"}
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            if live.poll(100):
                *routing, _marker, _frame = live.recv_multipart()
                live.send_multipart([*routing, b'{"success":true,"body":{}}'])

    server = threading.Thread(target=answer, daemon=True)
    server.start()
    forwarder = Forwarder(lambda _p: False, owners.get, lambda pid: int(pid[0]))
    lives: list[tuple[float, dict]] = []
    deads: list[Future] = []
    started = time.monotonic()
    try:
        for n in range(int(rate * seconds)):
            deads.append(forwarder.forward(_event(f"1-{n}")))
            if n % 10 == 0:
                sent = time.monotonic()
                forwarder.forward(_event(f"2-{n}")).add_done_callback(
                    lambda done, sent=sent: lives.append((time.monotonic() - sent, _reply(done))))
            time.sleep(1.0 / rate)
        for future in deads:
            future.result(timeout=600)
        last_dead_s = time.monotonic() - started
    finally:
        stop.set()
        server.join()
        forwarder.close()
        dead.close(linger=0)
        live.close(linger=0)
    codes = collections.Counter("ok" if reply["success"] else reply["error"]["code"] for _, reply in lives)
    return {"live_answered": len(lives), "live_sent": len(range(0, int(rate * seconds), 10)),
            "live_codes": dict(codes), "live_slowest_s": round(max(s for s, _ in lives), 2),
            "dead_sent": len(deads), "last_dead_answered_s": round(last_dead_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # thousands of "did not answer" lines are the point, not the output
    for _ in range(args.rounds):
        print(json.dumps(one_round(args.rate, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
