"""SQLite write contention between engine processes (``serve --shards``): batch latency and lock waits.

Each of N processes writes run-log-shaped batches (``--rows`` rows per ``BEGIN IMMEDIATE``
transaction, WAL, ``synchronous=NORMAL``, a 5 s busy timeout: the engine's settings) into one
file as fast as it can for ``--seconds``. It prints, per N: rows/s over all processes, each
batch's p50/p99 latency and the p99 wait for the write lock (SQLite's busy handler sleeps 1, 2,
5, 10 ms ... between retries across processes; within one process the engine queues on a lock
instead). It never asserts; docs/scaling.md quotes it.

    python scripts/bench_sqlite_writers.py [--processes 1,2,4] [--rows 200] [--seconds 3]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import multiprocessing
import os
import sqlite3
import tempfile
import time
from pathlib import Path

ROW = ("mt5:{}", 17, "alpha", "deposit.created", "success", 1_765_000_000_000, 1_765_000_000_001, '{"ok": true}')


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _writer(path: str, rows: int, seconds: float, index: int, out: multiprocessing.Queue, flock: bool) -> None:
    db = _connect(path)
    lock = os.open(path + "-writelock", os.O_RDWR | os.O_CREAT, 0o600) if flock else None
    batches, waits, written = [], [], 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        db.execute("BEGIN IMMEDIATE")
        locked = time.perf_counter()
        db.executemany("INSERT INTO runs (event_id, rule_id, brand, trigger, status, started, finished, result)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [(ROW[0].format(f"{index}-{written + n}"), *ROW[1:]) for n in range(rows)])
        db.execute("COMMIT")
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
        done = time.perf_counter()
        written += rows
        waits.append((locked - start) * 1000)
        batches.append((done - start) * 1000)
    out.put((written, batches, waits))


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else 0.0


def measure(processes: int, rows: int, seconds: float, folder: str, flock: bool = False) -> dict:
    path = str(Path(folder) / f"w{processes}{'f' if flock else ''}.db")
    db = _connect(path)
    db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, event_id TEXT, rule_id INT, brand TEXT, trigger TEXT,"
               " status TEXT, started INT, finished INT, result TEXT)")
    db.execute("CREATE INDEX runs_event ON runs (event_id, rule_id)")
    db.close()
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_writer, args=(path, rows, seconds, i, out, flock))
             for i in range(processes)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for proc in procs:
        proc.join()
    batches = [b for _, bs, _ in results for b in bs]
    waits = [w for _, _, ws in results for w in ws]
    return {"processes": processes, "flock": flock, "rows_per_s": round(sum(r for r, _, _ in results) / seconds),
            "batch_p50_ms": _pct(batches, 0.5), "batch_p99_ms": _pct(batches, 0.99),
            "lock_wait_p50_ms": _pct(waits, 0.5), "lock_wait_p99_ms": _pct(waits, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--flock", action="store_true", help="also with a file lock around each transaction")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for count in (int(n) for n in args.processes.split(",")):
            print(json.dumps(measure(count, args.rows, args.seconds, folder)))
            if args.flock:
                print(json.dumps(measure(count, args.rows, args.seconds, folder, flock=True)))


if __name__ == "__main__":
    main()
