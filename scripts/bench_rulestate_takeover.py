"""What reloading a gained partition's rule state costs (``serve --cluster``, docs/scaling.md).

A fresh schema of a PostgreSQL database (``--pg``) is filled with one brand's rule state at the
in-memory caps' scale: ``--customers`` customers, each with ``--entries`` window entries in one
stream (by ``customer.id``) and one cooldown, plus ``--accounts`` reference accounts for the
router's login -> customer copy. Then, ``--runs`` times: the start load (``RuleState.reload``,
everything), and ``RuleState.take_over`` of 1 and of 32 of 64 partitions (what a rule actor does
when the router tells it ``ReloadState``). Prints one JSON line of milliseconds; never asserts.

    python scripts/bench_rulestate_takeover.py [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokerflow.actors.rulestate import RuleState, Suppressed  # noqa: E402
from brokerflow.storage.store import open_store  # noqa: E402
from brokerflow.workflow.rules.ruleset import RuleSet  # noqa: E402
from brokerflow.workflow.rules.statekeys import StateKeys  # noqa: E402

RULES = [
    {"id": 1, "version": 1, "name": "once an hour", "brand": "alpha", "trigger": "deposit.created",
     "status": "active", "actions": [], "cooldown": {"key": "customer.id", "seconds": 3600}},
    {"id": 2, "version": 1, "name": "10k a day", "brand": "alpha", "trigger": "deposit.created", "status": "active",
     "actions": [], "conditions": [{"agg": "sum", "field": "amount_usd", "window_s": 86400, "by": "customer.id",
                                    "op": ">=", "value": 10_000}]},
]
STREAM = "deposit.created|customer.id|amount_usd"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--entries", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import psycopg2

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(args.pg)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    parts = urlsplit(args.pg)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
    store = open_store(urlunsplit(parts._replace(query=urlencode(query))))
    try:
        now = int(time.time() * 1000)
        repo = store.rule_state
        for first in range(0, args.customers, 1000):
            ids = range(first, min(first + 1000, args.customers))
            repo.write([(1, f"n:{c}", now) for c in ids],
                       [("alpha", STREAM, f"n:{c}", now - i, 100.0, f"mt5:{c}:{i}")
                        for c in ids for i in range(args.entries)])
        ruleset = RuleSet.from_rules(RULES)
        accounts = {login: {"login": login, "customer_id": login % args.customers} for login in range(args.accounts)}
        figures: dict[str, list[float]] = {"start_load": [], "links_copy": [], "take_over_1": [], "take_over_32": []}
        for _ in range(args.runs):
            state = RuleState("alpha", repo, None, Suppressed())
            started = time.perf_counter()
            state.reload(ruleset)
            figures["start_load"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            links = {login: account.get("customer_id") for login, account in accounts.items()}
            figures["links_copy"].append((time.perf_counter() - started) * 1000)
            for gained, name in (({5}, "take_over_1"), (set(range(32)), "take_over_32")):
                started = time.perf_counter()
                loaded = state.take_over(ruleset, StateKeys(gained, 64, links))
                figures[name].append((time.perf_counter() - started) * 1000)
        print(json.dumps({"customers": args.customers, "entries": args.customers * args.entries,
                          "accounts": args.accounts, "loaded_32": loaded,
                          **{k: [round(v, 1) for v in vs] for k, vs in figures.items()}}))
    finally:
        store.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


if __name__ == "__main__":
    main()
