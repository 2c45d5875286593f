"""The flat evaluation context of an event: catalog field name -> value, built once per event.

Conditions and ``{{field}}`` placeholders read this dict, so its keys are exactly the catalog's
field names (``trade.login``, ``account.group``, ``customer.kyc_current_level``, ...). It runs
for every event, so it is plain dict building: no copies of records beyond the prefixed keys.
Keys starting with ``_`` are internal (``_missing``, ``_customer_id``, ``_event_id``,
``_topic``) and never render as placeholders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow.catalog import TRADE_TRIGGERS
from workflow.events import Event
from workflow.reference import ReferenceData

_AMOUNT_TRIGGERS = frozenset(TRADE_TRIGGERS)
_KYC_FIELDS = (("kyc.step_code", "step_code"), ("kyc.level", "level"), ("kyc.status", "status"))


def _customer_id(topic: str, record: Mapping[str, Any], account: Mapping | None,
                 customer: Mapping | None) -> Any:
    if customer is not None and customer.get("id") is not None:
        return customer["id"]
    if topic == "kyc.step.push":
        return record.get("customer_id")
    if topic == "customer.push":
        return record.get("id")
    return account.get("customer_id") if account is not None else None


def build_context(trigger: str, event: Event, refs: ReferenceData) -> dict[str, Any]:
    """Everything a rule of ``trigger`` may test about ``event``, flat and keyed by field name."""
    brand, account, group, customer = refs.resolve(event)
    topic, record = event.topic, event.record
    missing: dict[str, str] = {}
    ctx: dict[str, Any] = {"brand": brand}
    if topic == "trade.push":
        ctx.update({"trade." + k: v for k, v in record.items()})
    if trigger in _AMOUNT_TRIGGERS:
        value, reason = refs.amount_usd(record, group)
        if value is None:
            missing["amount_usd"] = f"amount_usd unknown: {reason}"
        ctx["amount_usd"] = value
    if account is not None:
        ctx.update(refs.flat("account", account))
    if customer is not None:
        ctx.update(refs.flat("customer", customer))
    if topic == "kyc.step.push":
        for name, key in _KYC_FIELDS:
            ctx[name] = record.get(key)
    ctx["_missing"] = missing
    ctx["_customer_id"] = _customer_id(topic, record, account, customer)
    ctx["_event_id"] = event.key
    ctx["_topic"] = topic
    return ctx


def record_context(prefix: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """``{prefix.key: value}`` for one record: a before-hook's incoming customer or account."""
    head = prefix + "."
    return {head + str(k): v for k, v in record.items()}


def mapping_context(prefix: str, mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Like ``record_context`` and one level deeper for nested maps.

    ``mapping_context("request", {"headers": {"x-id": "1"}})`` gives ``request.headers`` (the
    map itself) and ``request.headers.x-id``; a sink request's headers/query/body and a manual
    run's ``input`` are addressed this way. Deeper maps stay whole values.
    """
    out: dict[str, Any] = {}
    head = prefix + "."
    for key, value in mapping.items():
        name = head + str(key)
        out[name] = value
        if isinstance(value, Mapping):
            inner = name + "."
            for sub, sub_value in value.items():
                out[inner + str(sub)] = sub_value
    return out
