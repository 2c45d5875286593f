"""How fast ``store.runs.write_many`` writes the run log (not a test: prints rows/s).

    python scripts/bench_storage.py [--rows 200000] [--batch 1000] [--db URL]

Defaults to a fresh SQLite file in a temporary directory. Machines and their load differ, so
on SQLite it also measures the ceiling in the same run: plain ``sqlite3.executemany`` of
ready-made tuples into an identical ``runs`` table (same columns and indexes, same pragmas).
The target is >= 50k rows/s (PERFORMANCE.md: ~165k rows/s ceiling into an unindexed table).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokerflow.storage import open_store  # noqa: E402
from brokerflow.storage.models import dumps  # noqa: E402
from brokerflow.storage.repositories.runs import COLUMNS  # noqa: E402


def make_runs(ids: range) -> list[dict]:
    return [
        {
            "id": run_id, "rule_id": run_id % 50, "rule_version": 1, "brand": f"brand-{run_id % 4}",
            "trigger": "deposit.created", "event_id": f"bo:{run_id}", "status": "success",
            "actions": [{"type": "notify.manager", "status": "success", "ms": 1}],
            "started_at": 1_790_000_000_000 + run_id, "finished_at": 1_790_000_000_001 + run_id,
        }
        for run_id in ids
    ]


def bench(url: str, rows: int, batch: int) -> float:
    with open_store(url) as store:
        batches = [make_runs(store.runs.allocate_ids(batch)) for _ in range(rows // batch)]
        started = time.perf_counter()
        for runs in batches:
            store.runs.write_many(runs)
        elapsed = time.perf_counter() - started
        assert store.runs.counts()["logged"] == len(batches) * batch
    return len(batches) * batch / elapsed


def ceiling(path: Path, rows: int, batch: int) -> float:
    """Raw ``sqlite3.executemany`` of pre-built tuples into a copy of the store's runs table."""
    with open_store(f"sqlite:///{path}"):  # creates the same schema
        pass
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    sql = f'INSERT INTO "runs" ({", ".join(COLUMNS)}) VALUES ({", ".join("?" * len(COLUMNS))})'
    tuples = [
        tuple(run.get(column) for column in COLUMNS[:8]) + (dumps(run["actions"]), run["started_at"],
                                                             run["finished_at"], None)
        for run in make_runs(range(1, rows + 1))
    ]
    started = time.perf_counter()
    for start in range(0, len(tuples), batch):
        conn.execute("BEGIN")
        conn.executemany(sql, tuples[start : start + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(tuples) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        rate = bench(url, args.rows, args.batch)
        print(f"write_many: {rate:,.0f} rows/s ({args.rows:,} rows in batches of {args.batch}) "
              f"on {url.split(':')[0]}")
        if url.startswith("sqlite"):
            raw = ceiling(Path(tmp) / "ceiling.db", args.rows, args.batch)
            print(f"raw sqlite3.executemany ceiling: {raw:,.0f} rows/s; write_many is {rate / raw:.0%} of it")


if __name__ == "__main__":
    main()
