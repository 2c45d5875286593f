"""Two engines, shards 0 and 1 of 2, on one SQLite file, fed the same stream: each event runs once.

Both engines subscribe to one publisher (as every shard subscribes to the parent's proxy under
``serve --shards``): each applies every reference push to its replica, runs only the events of
the customers it owns and settles the rest as not its own.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from brokerflow.api.client import ApiClient
from brokerflow.app.engine import Engine
from brokerflow.bus.publisher import Publisher
from brokerflow.workflow.partitions import partition_key, partition_of
from tests.conftest import wait_until
from tests.runtime.conftest import notify, test_settings

CUSTOMERS = 24
DEPOSITS_EACH = 5


@pytest.fixture
def pair(tmp_path):
    db = f"sqlite:///{tmp_path / 'shards.db'}"
    publisher = Publisher("tcp://127.0.0.1:0", source="mt5", bind=True, linger_ms=0)
    engines = []
    try:
        for index in (0, 1):
            settings = test_settings(db, events_bind=(), events_connect=(publisher.endpoint,), shard_index=index,
                                     shard_count=2)
            engines.append(Engine(settings).start())
        assert publisher.wait_subscribed(timeout_s=5, subscribers=2)
        yield publisher, engines
    finally:
        for engine in engines:
            engine.stop()
        publisher.close()


def test_every_event_runs_once_across_two_shards_in_each_customer_s_order(pair):
    publisher, (first, second) = pair
    token, _ = first.store.tokens.create("SESSION_ADMIN", name="shards")
    with ApiClient(first.api_endpoint, token, timeout_ms=10_000) as api:
        api.call("MngUpsertGroup", {"record": {"group": "real", "brand": "alpha", "currency": "USD"}})
        rule = api.call("MngAddWorkflowRule", {"rule": {"name": "deposit", "brand": "alpha",
                                                        "trigger": "deposit.created", "conditions": [],
                                                        "actions": [notify("{{trade.order}}")]}})["rule"]
    second.refs.apply("group", {"group": "real", "brand": "alpha", "currency": "USD"})
    second.reload_rules()  # serve --shards carries this over its control channel; here, by hand
    sent = 0
    for customer in range(1, CUSTOMERS + 1):
        # the account's link arrives in the same stream, just before its trades: the key must follow it
        publisher.publish("customer.push", {"id": customer, "brand": "alpha"}, event="EV_RECORD_ADD")
        publisher.publish("account.push", {"login": 1000 + customer, "group": "real", "customer_id": customer},
                          event="EV_RECORD_ADD")
        sent += 2
    for round_ in range(DEPOSITS_EACH):
        for customer in range(1, CUSTOMERS + 1):
            publisher.publish("trade.push", {"order": round_ * 1000 + customer, "login": 1000 + customer,
                                             "cmd": "OP_BALANCE_IN", "profit": 10.0},
                              event="EV_RECORD_ADD", id=f"d-{customer}-{round_}")
            sent += 1
    for engine in (first, second):
        wait_until(lambda engine=engine: engine.stats()["bus"]["received"] >= sent, timeout_s=20)
        assert engine.drain(10)
        engine.flush()
    runs = first.store.runs.list(rule_id=rule["id"], limit=1000)
    assert Counter(run["event_id"] for run in runs) == Counter(
        {f"d-{c}-{r}": 1 for c in range(1, CUSTOMERS + 1) for r in range(DEPOSITS_EACH)})
    by_customer: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for run in runs:
        _, customer, round_ = run["event_id"].split("-")
        by_customer[customer].append((run["id"], int(round_)))
    for customer, seen in by_customer.items():
        assert [round_ for _id, round_ in sorted(seen)] == list(range(DEPOSITS_EACH)), customer
    owned = [partition_of(partition_key("customer.push", {"id": c}, {}), 64) % 2 for c in range(1, CUSTOMERS + 1)]
    assert 0 < owned.count(0) < CUSTOMERS  # both shards own some of these customers
    not_owned = [engine.stats()["bus"]["not_owned"] for engine in (first, second)]
    assert not_owned == [(2 + DEPOSITS_EACH) * owned.count(1), (2 + DEPOSITS_EACH) * owned.count(0)]
    # the replica of each shard holds every account: it must, to key the next trade
    assert all(len(engine.refs.accounts) == CUSTOMERS for engine in (first, second))
    stored = first.store.reference.all("account")
    assert sorted(a["login"] for a in stored) == [1000 + c for c in range(1, CUSTOMERS + 1)]
