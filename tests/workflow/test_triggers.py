"""Bus events map to triggers exactly as the seed's table says, and nothing else maps."""

from __future__ import annotations

import pytest

from brokerflow.workflow.events import parse_event
from brokerflow.workflow.triggers import map_trigger


def _trade(event, cmd):
    return parse_event("trade.push", {"event": event, "record": {"order": 1, "login": 7, "cmd": cmd}}, 0)


def _push(topic, event, record):
    payload = {"record": record} if event is None else {"event": event, "record": record}
    return parse_event(topic, payload, 0)


SEED_ROWS = [
    (_trade("EV_RECORD_ADD", "OP_BUY"), "trade.opened"),
    (_trade("EV_RECORD_ADD", "OP_SELL"), "trade.opened"),
    (_trade("EV_RECORD_ACTIVATE_TRADE", "OP_BUY"), "trade.opened"),
    (_trade("EV_RECORD_ACTIVATE_TRADE", "OP_SELL"), "trade.opened"),
    (_trade("EV_RECORD_CLOSE_TRADE", "OP_BUY"), "trade.closed"),
    (_trade("EV_RECORD_CLOSE_TRADE", "OP_SELL"), "trade.closed"),
    (_trade("EV_RECORD_ADD", "OP_BALANCE_IN"), "deposit.created"),
    (_trade("EV_RECORD_ADD", "OP_BALANCE_OUT"), "withdrawal.created"),
    (_push("account.push", "EV_RECORD_ADD", {"login": 7}), "account:added"),
    (_push("account.push", "EV_RECORD_UPDATE", {"login": 7}), "account:updated"),
    (_push("account.push", "EV_RECORD_DELETE", {"login": 7}), "account:deleted"),
    (_push("customer.push", "EV_RECORD_ADD", {"id": 3}), "customer.created"),
    (_push("customer.push", "EV_RECORD_UPDATE", {"id": 3}), "customer.updated"),
    (_push("kyc.step.push", None, {"customer_id": 3, "step_code": "POA", "status": "approved"}),
     "kyc.step.approved"),
    (_push("kyc.step.push", None, {"customer_id": 3, "step_code": "POA", "status": "rejected"}),
     "kyc.step.rejected"),
    (_push("kyc.step.push", "EV_RECORD_UPDATE", {"customer_id": 3, "step_code": "POA", "status": "approved"}),
     "kyc.step.approved"),
]

UNMAPPED = [
    _trade("EV_RECORD_UPDATE", "OP_BUY"),
    _trade("EV_RECORD_DELETE", "OP_SELL"),
    _trade("EV_RECORD_CLOSE_TRADE", "OP_BALANCE_IN"),
    _trade("EV_RECORD_ACTIVATE_TRADE", "OP_BALANCE_OUT"),
    _trade("EV_RECORD_UPDATE", "OP_BALANCE_IN"),
    _trade("EV_RECORD_ADD", "OP_CREDIT"),
    _trade("EV_RECORD_ADD", "op_buy"),
    _push("account.push", "EV_RECORD_ACTIVATE_TRADE", {"login": 7}),
    _push("account.push", "EV_RECORD_CLOSE_TRADE", {"login": 7}),
    _push("customer.push", "EV_RECORD_DELETE", {"id": 3}),
    _push("customer.push", "EV_RECORD_CLOSE_TRADE", {"id": 3}),
    _push("kyc.step.push", None, {"customer_id": 3, "step_code": "POA", "status": "pending"}),
    _push("kyc.step.push", None, {"customer_id": 3, "step_code": "POA", "status": "APPROVED"}),
    _push("group.push", "EV_RECORD_ADD", {"group": "real\\eu"}),
    _push("manager.push", "EV_RECORD_ADD", {"id": 1}),
    _push("rate.push", None, {"currency": "EUR", "usd": 1.08}),
]


@pytest.mark.parametrize(("event", "trigger"), SEED_ROWS, ids=lambda x: getattr(x, "topic", x))
def test_every_seed_row_maps_to_its_trigger(event, trigger):
    assert map_trigger(event) == trigger


@pytest.mark.parametrize("event", UNMAPPED, ids=lambda e: f"{e.topic}:{e.event}:{e.record.get('cmd') or ''}")
def test_events_outside_the_seed_table_map_to_no_trigger(event):
    assert map_trigger(event) is None


def test_mapping_reads_only_the_event_not_extra_record_fields():
    event = _push("account.push", "EV_RECORD_UPDATE", {"login": 7, "cmd": "OP_BUY", "status": "approved"})
    assert map_trigger(event) == "account:updated"
