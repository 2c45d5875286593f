"""The cached trade path gives exactly the contexts of a plain, uncached build, under any update.

``naive_context`` below is the straightforward definition (every lookup done afresh, keys
added one by one); seeded random worlds, updates and events compare it with
``build_context``, ``routed_context`` and ``resolve``: same keys, same order, same values.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from brokerflow.app import benchdata
from brokerflow.workflow.catalog import TRADE_TRIGGERS
from brokerflow.workflow.context import build_context, routed_context
from brokerflow.workflow.events import Event
from brokerflow.workflow.reference import ReferenceData

KINDS = {"Group": "group", "Account": "account", "Customer": "customer", "Manager": "manager", "Rate": "rate",
         "KycStepTemplate": "kyc_step_template"}
TRIGGERS = (*TRADE_TRIGGERS, "account:updated")  # a non-amount trigger on a trade: the dry-run case


def naive_links(refs: ReferenceData, event: Event) -> tuple[Any, Any, Any, Any]:
    record = event.record
    if event.topic == "trade.push":
        account = refs.accounts.get(record.get("login"))
    elif event.topic == "account.push":
        stored = refs.accounts.get(record.get("login"))
        account = {**stored, **record} if stored else record
    elif event.topic == "customer.push":
        stored = refs.customers.get(record.get("id"))
        brand = record.get("brand") or (stored.get("brand") if stored else None)
        return brand, None, None, {**stored, **record} if stored else record
    else:
        customer = refs.customers.get(record.get("customer_id"))
        return (customer.get("brand") if customer else None), None, None, customer
    if account is None:
        return None, None, None, None
    group = refs.groups.get(account.get("group"))
    customer_id = account.get("customer_id")
    customer = refs.customers.get(customer_id) if customer_id is not None else None
    return (group.get("brand") if group else None), account, group, customer


def naive_context(trigger: str, event: Event, refs: ReferenceData) -> dict[str, Any]:
    brand, account, group, customer = naive_links(refs, event)
    record, topic = event.record, event.topic
    ctx: dict[str, Any] = {"brand": brand}
    missing = {}
    if topic == "trade.push":
        for key, value in record.items():
            ctx["trade." + key] = value
    if trigger in TRADE_TRIGGERS:
        value, reason = refs.amount_usd(record, group)  # the general, uncached conversion
        if value is None:
            missing["amount_usd"] = f"amount_usd unknown: {reason}"
        ctx["amount_usd"] = value
    for prefix, rec in (("account.", account), ("customer.", customer)):
        for key, value in (rec or {}).items():
            ctx[prefix + key] = value
    if topic == "kyc.step.push":
        ctx.update({"kyc.step_code": record.get("step_code"), "kyc.level": record.get("level"),
                    "kyc.status": record.get("status")})
    ctx["_missing"] = missing
    if customer is not None and customer.get("id") is not None:
        ctx["_customer_id"] = customer["id"]
    elif topic == "kyc.step.push":
        ctx["_customer_id"] = record.get("customer_id")
    elif topic == "customer.push":
        ctx["_customer_id"] = record.get("id")
    else:
        ctx["_customer_id"] = account.get("customer_id") if account is not None else None
    ctx["_event_id"] = event.key
    ctx["_topic"] = topic
    ctx["_ts"] = event.received_ms if event.ts_ms is None else event.ts_ms
    return ctx


def world() -> ReferenceData:
    refs = ReferenceData()
    for name, records in benchdata.reference("http://hooks.invalid").items():
        refs.load(KINDS[name], records)
    return refs


LOGINS = [benchdata.login_of(b, n) for b in range(4) for n in range(0, 500, 50)] + [999, 100_000]
GROUPS = ["real\\alpha", "real\\beta", "real\\gamma", "real\\delta", "lost\\group"]
ODD = (None, True, False, 0, 1, 2.5, -3, "", "x", "EUR", "usd")
NUMBERS = (None, 0, 1, 2.5, -3, 100, -42.5, 0.0)  # what the ingress lets through for numeric fields


def mutate(rng: random.Random, refs: ReferenceData) -> None:
    """One reference change of any kind the router may apply, including odd values."""
    roll = rng.randrange(12)
    login, customer_id = rng.choice(LOGINS), rng.choice(LOGINS)
    if roll == 0:
        refs.apply("account", {"login": login, "group": rng.choice(GROUPS)})
    elif roll == 1:
        refs.apply("account", {"login": login, "customer_id": rng.choice((None, customer_id, 424242))})
    elif roll == 2:
        refs.apply("account", {"login": login, "leverage": rng.choice(ODD), rng.choice(("name", "new")): "n"})
    elif roll == 3:
        refs.apply("customer", {"id": customer_id, "risk_level": rng.choice(("low", "high", None)),
                                "kyc_current_level": rng.choice(ODD)})
    elif roll == 4:
        refs.apply("group", {"group": rng.choice(GROUPS), "brand": rng.choice(("alpha", "beta", None, "")),
                             "currency": rng.choice(("USD", "usd", "EUR", "eur", "JPY", None, "", 5))})
    elif roll == 5:
        refs.apply("rate", {"currency": rng.choice(("EUR", "eur", "JPY", "USD")),
                            "usd": rng.choice((1.08, 2, 0, -1, True, None, "1.1", float("inf")))})
    elif roll == 6:
        refs.remove("rate", rng.choice(("EUR", "JPY")))
    elif roll == 7:
        refs.remove("account", login)
    elif roll == 8:
        refs.remove("customer", customer_id)
    elif roll == 9:
        refs.remove("group", rng.choice(GROUPS))
    elif roll == 10:
        refs.load("customer", list(refs.customers.values()))
    else:
        refs.apply("customer", {"id": customer_id, "brand": rng.choice(("alpha", "gamma", None))})


def random_event(rng: random.Random, seq: int) -> Event:
    roll = rng.random()
    if roll < 0.85:
        record: dict[str, Any] = {"order": seq, "login": rng.choice(LOGINS), "cmd": rng.choice(benchdata_cmds)}
        for key in rng.sample(("volume", "symbol", "profit", "comment", "close_price", "amount_usd", "extra"),
                              rng.randrange(0, 7)):
            record[key] = rng.choice(NUMBERS if key in ("volume", "profit", "close_price", "amount_usd") else ODD)
        items = list(record.items())
        if rng.random() < 0.2:
            rng.shuffle(items)  # another producer's key order
        return Event("trade.push", rng.choice(("EV_RECORD_ADD", "EV_RECORD_CLOSE_TRADE")), dict(items),
                     source="p", seq=seq, id=rng.choice((None, f"ev-{seq}")))
    if roll < 0.9:
        return Event("account.push", "EV_RECORD_UPDATE", {"login": rng.choice(LOGINS), "group": rng.choice(GROUPS)},
                     source="p", seq=seq)
    if roll < 0.95:
        return Event("customer.push", "EV_RECORD_UPDATE", {"id": rng.choice(LOGINS), "risk_level": "mid"},
                     source="p", seq=seq)
    return Event("kyc.step.push", None, {"customer_id": rng.choice(LOGINS), "step_code": "ID", "status": "approved"},
                 source="p", seq=seq)


benchdata_cmds = ("OP_BUY", "OP_SELL", "OP_BALANCE_IN", "OP_BALANCE_OUT")


def items(ctx: dict[str, Any]) -> list[tuple[str, Any]]:
    """The context's items in order, NaN made comparable (an infinite rate times zero profit)."""
    return [(key, "NaN" if isinstance(value, float) and math.isnan(value) else value) for key, value in ctx.items()]


def assert_same(refs: ReferenceData, trigger: str, event: Event) -> None:
    expected = items(naive_context(trigger, event, refs))
    assert items(build_context(trigger, event, refs)) == expected
    assert refs.resolve(event) == naive_links(refs, event)
    brand, routed = routed_context(trigger, event, refs)
    assert brand == dict(expected)["brand"]
    if brand is None:
        assert routed is None
    else:
        assert items(routed) == expected


def test_the_benchmark_stream_builds_the_plain_contexts():
    refs = world()
    for seq, (topic, record, name) in enumerate(benchdata.events(600, seed=3), 1):
        event = Event(topic, name, record, source="bench", seq=seq)
        for trigger in ("trade.opened", "deposit.created"):
            assert_same(refs, trigger, event)


@pytest.mark.parametrize("seed", range(6))
def test_random_updates_are_seen_by_the_next_context(seed):
    rng = random.Random(seed)
    refs = world()
    for seq in range(1, 1500):
        if rng.random() < 0.3:
            mutate(rng, refs)
        event = random_event(rng, seq)
        assert_same(refs, rng.choice(TRIGGERS), event)


def test_contexts_of_one_login_are_independent_copies():
    refs = world()
    login = benchdata.login_of(0, 1)
    event = Event("trade.push", "EV_RECORD_ADD", {"order": 1, "login": login, "cmd": "OP_BUY", "profit": 1.0})
    first = build_context("trade.opened", event, refs)
    first["account.country"] = "XX"
    first["_missing"]["amount_usd"] = "scribbled"
    second = build_context("trade.opened", event, refs)
    assert second["account.country"] == refs.accounts[login]["country"] and second["_missing"] == {}


def test_a_rate_change_is_seen_by_the_next_trade():
    refs = world()
    login = benchdata.login_of(1, 3)  # beta trades in EUR
    event = Event("trade.push", "EV_RECORD_ADD", {"order": 1, "login": login, "cmd": "OP_BALANCE_IN",
                                                  "profit": 100.0})
    assert build_context("deposit.created", event, refs)["amount_usd"] == pytest.approx(108.0)
    refs.apply("rate", {"currency": "EUR", "usd": 2})
    assert build_context("deposit.created", event, refs)["amount_usd"] == pytest.approx(200.0)
    refs.remove("rate", "EUR")
    ctx = build_context("deposit.created", event, refs)
    assert ctx["amount_usd"] is None and ctx["_missing"] == {"amount_usd": "amount_usd unknown: no USD rate for EUR"}


def test_a_customer_echo_through_the_router_is_seen_by_the_next_trade():
    refs = world()
    login = benchdata.login_of(2, 7)
    event = Event("trade.push", "EV_RECORD_ADD", {"order": 1, "login": login, "cmd": "OP_BUY", "volume": 10})
    assert routed_context("trade.opened", event, refs)[1]["customer.risk_level"] == "low"
    refs.apply("customer", {"id": login, "risk_level": "high"})
    assert routed_context("trade.opened", event, refs)[1]["customer.risk_level"] == "high"
    refs.apply("group", {"group": "real\\gamma", "brand": None})
    assert routed_context("trade.opened", event, refs) == (None, None)


def test_the_trade_cache_is_bounded(monkeypatch):
    import brokerflow.workflow.reference as reference

    monkeypatch.setattr(reference, "TRADE_CACHE_MAX", 10)
    refs = world()
    for n in range(50):
        refs.trade_links(benchdata.login_of(0, n))
    assert len(refs._flat["trade"]) <= 10
