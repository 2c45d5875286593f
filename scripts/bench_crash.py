"""The ``kill -9`` run of ``brokerflow bench --crash``: events lost and doubled across an engine crash.

A plain PUB → ``brokerflow relay`` → ``brokerflow serve --replay``; the engine is killed with
SIGKILL when half the events are sent, the publisher goes on, the engine is restarted on the same
SQLite file. Prints a table and one JSON line; never asserts (``brokerflow/app/benchcrash.py``).

    python scripts/bench_crash.py [--events 100000] [--rate 5000] [--down-seconds 2] [--kill-at 0.5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokerflow.app.benchcrash import measure_crash, table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=5000, help="events/s the publisher sends (0: flat out)")
    parser.add_argument("--down-seconds", type=float, default=2.0, help="how long the engine stays down")
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of the events sent before the kill")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="brokerflow-crash-") as folder:
        result = measure_crash(args.events, folder, rate=args.rate, kill_at=args.kill_at, down_s=args.down_seconds)
    print(table(result))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
