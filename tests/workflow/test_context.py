"""Evaluation contexts: every catalog field is there for the triggers that provide it."""

from __future__ import annotations

import pytest

from brokerflow.workflow.catalog import EVENT_TRIGGERS, FIELDS
from brokerflow.workflow.context import build_context, mapping_context, record_context
from brokerflow.workflow.events import Event
from brokerflow.workflow.reference import ReferenceData

SEED_FIELDS = (
    "brand amount_usd trade.order trade.login trade.cmd trade.volume trade.close_price trade.symbol "
    "trade.comment account.login account.group account.name account.email account.country "
    "account.enable account.leverage customer.country customer.language customer.email "
    "customer.kyc_status customer.kyc_current_level customer.risk_level"
).split()

CUSTOMER = {"id": 7, "brand": "acme", "email": "c@x.io", "country": "DE", "language": "de",
            "kyc_status": "pending", "kyc_current_level": 0, "risk_level": "low", "status": "active",
            "assigned_manager_id": 3, "manager_id": 4}
ACCOUNT = {"login": 1001, "group": "real\\eur", "name": "Ann", "email": "a@x.io", "country": "DE",
           "enable": True, "leverage": 100, "customer_id": 7}
TRADE = {"order": 55, "login": 1001, "volume": 100, "symbol": "EURUSD", "open_price": 1.1,
         "close_price": 1.2, "profit": 100.0, "comment": "hello"}

EVENTS = {
    "trade.opened": ("trade.push", "EV_RECORD_ADD", {**TRADE, "cmd": "OP_BUY"}),
    "trade.closed": ("trade.push", "EV_RECORD_CLOSE_TRADE", {**TRADE, "cmd": "OP_SELL"}),
    "deposit.created": ("trade.push", "EV_RECORD_ADD", {**TRADE, "cmd": "OP_BALANCE_IN"}),
    "withdrawal.created": ("trade.push", "EV_RECORD_ADD", {**TRADE, "cmd": "OP_BALANCE_OUT", "profit": -50}),
    "account:added": ("account.push", "EV_RECORD_ADD", dict(ACCOUNT)),
    "account:updated": ("account.push", "EV_RECORD_UPDATE", {"login": 1001, "name": "Ann B"}),
    "account:deleted": ("account.push", "EV_RECORD_DELETE", {"login": 1001}),
    "customer.created": ("customer.push", "EV_RECORD_ADD", dict(CUSTOMER)),
    "customer.updated": ("customer.push", "EV_RECORD_UPDATE", {"id": 7, "risk_level": "high"}),
    "kyc.step.approved": ("kyc.step.push", None, {"customer_id": 7, "step_code": "POI", "level": 1,
                                                   "status": "approved"}),
    "kyc.step.rejected": ("kyc.step.push", None, {"customer_id": 7, "step_code": "POA", "level": 2,
                                                   "status": "rejected"}),
}


@pytest.fixture
def refs():
    refs = ReferenceData()
    refs.apply("group", {"group": "real\\eur", "brand": "acme", "currency": "EUR"})
    refs.apply("rate", {"currency": "EUR", "usd": 1.1})
    refs.apply("account", ACCOUNT)
    refs.apply("customer", CUSTOMER)
    return refs


def context_for(trigger, refs, **event_kw):
    topic, name, record = EVENTS[trigger]
    return build_context(trigger, Event(topic, name, record, **event_kw), refs)


def test_the_catalog_holds_every_seed_field():
    assert set(SEED_FIELDS) <= set(FIELDS)


def test_every_event_trigger_has_a_sample_event():
    assert set(EVENTS) == set(EVENT_TRIGGERS)


@pytest.mark.parametrize("trigger", EVENT_TRIGGERS)
def test_every_catalog_field_is_produced_for_the_triggers_that_provide_it(trigger, refs):
    ctx = context_for(trigger, refs)
    expected = [name for name, spec in FIELDS.items() if not spec.prefix and trigger in spec.triggers]
    assert [name for name in expected if ctx.get(name) is None] == []


@pytest.mark.parametrize("trigger", ["trade.opened", "deposit.created"])
def test_trade_context_values(trigger, refs):
    ctx = context_for(trigger, refs, id="ev-1")
    assert ctx["brand"] == "acme"
    assert ctx["trade.login"] == 1001 and ctx["trade.volume"] == 100 and ctx["trade.symbol"] == "EURUSD"
    assert ctx["account.group"] == "real\\eur" and ctx["account.enable"] is True
    assert ctx["customer.kyc_current_level"] == 0 and ctx["customer.risk_level"] == "low"
    assert ctx["amount_usd"] == pytest.approx(110.0)
    assert ctx["_missing"] == {}
    assert ctx["_customer_id"] == 7 and ctx["_event_id"] == "ev-1" and ctx["_topic"] == "trade.push"


def test_withdrawal_amount_is_absolute(refs):
    assert context_for("withdrawal.created", refs)["amount_usd"] == pytest.approx(55.0)


def test_record_amount_usd_is_used_as_given(refs):
    event = Event("trade.push", "EV_RECORD_ADD", {"order": 1, "login": 1001, "cmd": "OP_BALANCE_IN",
                                                  "profit": 100.0, "amount_usd": 42})
    assert build_context("deposit.created", event, refs)["amount_usd"] == 42


def test_unknown_rate_leaves_amount_missing_with_a_reason(refs):
    refs.remove("rate", "EUR")
    ctx = context_for("deposit.created", refs)
    assert ctx.get("amount_usd") is None
    assert ctx["_missing"] == {"amount_usd": "amount_usd unknown: no USD rate for EUR"}


def test_account_without_customer_has_no_customer_fields(refs):
    refs.apply("account", {"login": 1001, "customer_id": None})
    ctx = context_for("trade.opened", refs)
    assert not any(key.startswith("customer.") for key in ctx)
    assert ctx["_customer_id"] is None and ctx["account.login"] == 1001


def test_account_push_context_is_the_record_merged_with_the_replica(refs):
    ctx = context_for("account:updated", refs)
    assert ctx["account.name"] == "Ann B" and ctx["account.leverage"] == 100
    assert ctx["customer.email"] == "c@x.io" and ctx["brand"] == "acme"
    assert "trade.login" not in ctx and "amount_usd" not in ctx


def test_customer_push_context_merges_the_replica(refs):
    ctx = context_for("customer.updated", refs)
    assert ctx["customer.risk_level"] == "high" and ctx["customer.country"] == "DE"
    assert ctx["_customer_id"] == 7 and not any(key.startswith("account.") for key in ctx)


def test_kyc_step_context(refs):
    ctx = context_for("kyc.step.rejected", refs)
    assert (ctx["kyc.step_code"], ctx["kyc.level"], ctx["kyc.status"]) == ("POA", 2, "rejected")
    assert ctx["customer.kyc_status"] == "pending" and ctx["_customer_id"] == 7 and ctx["brand"] == "acme"


def test_kyc_step_of_an_unknown_customer_still_names_the_customer_id(refs):
    event = Event("kyc.step.push", None, {"customer_id": 99, "step_code": "POI", "status": "approved"})
    ctx = build_context("kyc.step.approved", event, refs)
    assert ctx["_customer_id"] == 99 and ctx["brand"] is None


def test_a_customer_change_is_seen_by_the_next_context(refs):
    first = context_for("trade.opened", refs)
    refs.apply("customer", {"id": 7, "kyc_current_level": 1})
    second = context_for("trade.opened", refs)
    assert first["customer.kyc_current_level"] == 0 and second["customer.kyc_current_level"] == 1


def test_contexts_are_independent_dicts(refs):
    first = context_for("trade.opened", refs)
    first["customer.email"] = "changed"
    assert context_for("trade.opened", refs)["customer.email"] == "c@x.io"
    assert refs.customers[7]["email"] == "c@x.io"


def test_record_context_prefixes_every_key():
    flat = record_context("customer", {"id": 1, "email": "a@b"})
    assert flat == {"customer.id": 1, "customer.email": "a@b"}


def test_mapping_context_flattens_one_level():
    request = {"method": "POST", "route": "leads", "headers": {"x-token": "t"}, "query": {"page": "2"},
               "body": {"amount": 5, "lead": {"name": "A"}}}
    ctx = mapping_context("request", request)
    assert ctx["request.method"] == "POST" and ctx["request.route"] == "leads"
    assert ctx["request.headers.x-token"] == "t" and ctx["request.query.page"] == "2"
    assert ctx["request.body.amount"] == 5
    assert ctx["request.body.lead"] == {"name": "A"} and "request.body.lead.name" not in ctx
    assert ctx["request.body"] == request["body"]
    assert mapping_context("input", {}) == {}
