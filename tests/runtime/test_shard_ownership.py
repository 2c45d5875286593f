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
from brokerflow.errors import Conflict
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


def _engines(tmp_path, name: str, shards: int, publisher: Publisher) -> list[Engine]:
    db = f"sqlite:///{tmp_path / f'{name}.db'}"
    return [Engine(test_settings(db, events_bind=(), events_connect=(publisher.endpoint,), shard_index=index,
                                 shard_count=shards)).start() for index in range(shards)]


RULES = [
    ("deposit.created", [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}]),
    ("kyc.step.approved", [{"type": "customer.set_status", "params": {"status": "verified"}}]),
    ("customer.updated", [notify("{{customer.id}} changed")]),
]


def _stream(publisher: Publisher) -> int:
    """A stream with every customer-state path: reference pushes, trades, KYC steps, our own echoes."""
    sent = 0

    def publish(topic: str, record: dict, event: str | None, id: str) -> None:  # noqa: A002
        nonlocal sent
        publisher.publish(topic, record, event=event, id=id)
        sent += 1

    publish("group.push", {"group": "real", "brand": "alpha", "currency": "USD"}, "EV_RECORD_ADD", "g")
    for c in range(1, 17):
        publish("customer.push", {"id": c, "brand": "alpha", "country": "DE"}, "EV_RECORD_ADD", f"c-{c}")
        publish("account.push", {"login": 100 + c, "group": "real", "customer_id": c}, "EV_RECORD_ADD", f"a-{c}")
    for c in range(1, 17):
        publish("trade.push", {"order": c, "login": 100 + c, "cmd": "OP_BALANCE_IN", "profit": 5.0},
                "EV_RECORD_ADD", f"t-{c}")
        publish("kyc.step.push", {"customer_id": c, "step_code": "ID", "status": "approved", "level": 1}, None,
                f"k-{c}")
        publish("customer.push", {"id": c, "country": "FR"}, "EV_RECORD_UPDATE", f"u-{c}")
    return sent


def _outcome(engines: list[Engine], sent: int) -> tuple[set, list, dict, Counter]:
    for engine in engines:
        wait_until(lambda engine=engine: engine.stats()["bus"]["received"] >= sent, timeout_s=20)
    for _ in range(2):  # our own echoes go round once more: drain everyone twice
        for engine in engines:
            assert engine.drain(10)
    for engine in engines:
        engine.flush()
    store = engines[0].store
    every_run = store.runs.list(limit=1000)
    runs = {(run["event_id"], run["rule_id"]) for run in every_run if run["event_id"].split("-")[0] in "tkuca"}
    by_rule = Counter(run["rule_id"] for run in every_run)  # with the runs of our own changes' echoes
    customers = sorted(store.reference.all("customer"), key=lambda c: c["id"])
    profiles = store.kyc.get_profiles(list(range(1, 17)))
    return runs, customers, {cid: {k: v for k, v in p.items() if not k.endswith(("_ms", "_at"))}
                             for cid, p in profiles.items()}, by_rule


def test_one_shard_and_two_give_the_same_runs_and_the_same_customer_and_kyc_state(tmp_path):
    outcomes = []
    for name, shards in (("one", 1), ("two", 2)):
        publisher = Publisher("tcp://127.0.0.1:0", source="mt5", bind=True, linger_ms=0)
        engines = _engines(tmp_path, name, shards, publisher)
        try:
            assert publisher.wait_subscribed(timeout_s=5, subscribers=shards)
            token, _ = engines[0].store.tokens.create("SESSION_ADMIN", name="equivalence")
            with ApiClient(engines[0].api_endpoint, token, timeout_ms=10_000) as api:
                for trigger, actions in RULES:
                    api.call("MngAddWorkflowRule", {"rule": {"name": trigger, "brand": "alpha", "trigger": trigger,
                                                             "actions": actions}})
            for engine in engines[1:]:
                engine.reload_rules()
            outcomes.append(_outcome(engines, _stream(publisher)))
        finally:
            for engine in engines:
                engine.stop()
            publisher.close()
    (runs_one, customers_one, kyc_one, by_rule_one), (runs_two, customers_two, kyc_two, by_rule_two) = outcomes
    assert by_rule_one == by_rule_two and by_rule_one[3] > 16  # customer.updated also ran for our own changes
    assert len(runs_one) == 16 * 3  # per customer: its deposit, its KYC approval, its CRM update
    assert runs_one == runs_two
    assert customers_one == customers_two
    assert all(c["risk_level"] == "high" and c["status"] == "verified" and c["country"] == "FR"
               for c in customers_two)
    assert kyc_one == kyc_two and len(kyc_two) == 16


STATEFUL_RULES = [
    {"name": "once per customer", "trigger": "deposit.created", "cooldown": {"key": "customer.id", "seconds": 3600},
     "actions": [notify("first deposit of {{customer.id}}")]},
    {"name": "third deposit", "trigger": "deposit.created",
     "conditions": [{"agg": "count", "window_s": 3600, "by": "customer.id", "op": ">=", "value": 3}],
     "actions": [notify("{{customer.id}} deposits often")]},
    {"name": "sum by login", "trigger": "deposit.created",
     "conditions": [{"agg": "sum", "field": "amount_usd", "window_s": 3600, "by": "trade.login", "op": ">=",
                     "value": 25}],
     "actions": [notify("{{trade.login}} deposited 25")]},
]


def _deposits(publisher: Publisher) -> int:
    """Customers linked to accounts, then five rounds of deposits: cooldowns and windows per customer."""
    sent = 0

    def publish(topic: str, record: dict, id: str) -> None:  # noqa: A002
        nonlocal sent
        publisher.publish(topic, record, event="EV_RECORD_ADD", id=id)
        sent += 1

    publish("group.push", {"group": "real", "brand": "alpha", "currency": "USD"}, "g")
    for c in range(1, 13):
        publish("customer.push", {"id": c, "brand": "alpha"}, f"c-{c}")
        publish("account.push", {"login": 100 + c, "group": "real", "customer_id": c}, f"a-{c}")
    for round_ in range(5):
        for c in range(1, 13):
            publish("trade.push", {"order": round_ * 100 + c, "login": 100 + c, "cmd": "OP_BALANCE_IN",
                                   "profit": float(c % 4 + 5)}, f"t-{c}-{round_}")
    return sent


def test_cooldowns_and_windowed_aggregates_per_customer_give_the_same_runs_on_one_shard_and_two(tmp_path):
    """Rule state (cooldowns, aggregate windows) keyed by the customer or its login lives in the
    customer's partition: split over two shards, every rule fires for the same events."""
    outcomes = []
    for name, shards in (("one", 1), ("two", 2)):
        publisher = Publisher("tcp://127.0.0.1:0", source="mt5", bind=True, linger_ms=0)
        engines = _engines(tmp_path, f"stateful-{name}", shards, publisher)
        try:
            assert publisher.wait_subscribed(timeout_s=5, subscribers=shards)
            token, _ = engines[0].store.tokens.create("SESSION_ADMIN", name="equivalence")
            with ApiClient(engines[0].api_endpoint, token, timeout_ms=10_000) as api:
                added = [api.call("MngAddWorkflowRule", {"rule": {"brand": "alpha", **rule}})["rule"]
                         for rule in STATEFUL_RULES]
                names = {rule["id"]: rule["name"] for rule in added}
            for engine in engines[1:]:
                engine.reload_rules()
            sent = _deposits(publisher)
            for engine in engines:
                wait_until(lambda engine=engine, sent=sent: engine.stats()["bus"]["received"] >= sent, timeout_s=20)
                assert engine.drain(10)
                engine.flush()
            runs = engines[0].store.runs.list(limit=1000)
            outcomes.append({(run["event_id"], names[run["rule_id"]]) for run in runs if run["rule_id"] in names})
        finally:
            for engine in engines:
                engine.stop()
            publisher.close()
    one, two = outcomes
    assert one == two
    fired = Counter(rule for _event, rule in one)
    assert fired["once per customer"] == 12  # the cooldown let one deposit per customer through
    assert fired["third deposit"] == 12 * 3  # rounds 3, 4 and 5 of every customer
    assert {event for event, rule in one if rule == "once per customer"} == {f"t-{c}-0" for c in range(1, 13)}
    assert 0 < fired["sum by login"] < 12 * 5


def test_a_shard_makes_only_pids_it_owns_and_refuses_another_shard_s(pair):
    _publisher, (first, second) = pair
    first.store.flows.save({"name": "counter", "initial": "counting", "states": {
        "counting": {"on": {"stop": "stopped"}}, "stopped": {"final": True}}})
    for engine, index in ((first, 0), (second, 1)):
        pids = [engine.processes.handle("START", {"name": "counter"}, None).result(timeout=10)["pid"]
                for _ in range(6)]
        assert {partition_of(f"p:{pid}", 64) % 2 for pid in pids} == {index}
        elsewhere = next(f"x{n}" for n in range(100) if partition_of(f"p:x{n}", 64) % 2 != index)
        with pytest.raises(Conflict, match="another shard"):
            engine.processes.handle("EVENT", {"pid": elsewhere, "name": "stop"}, None).result(timeout=10)
