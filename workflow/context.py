"""The flat evaluation context of an event: catalog field name -> value, built once per event.

Conditions and ``{{field}}`` placeholders read this dict, so its keys are exactly the catalog's
field names (``trade.login``, ``account.group``, ``customer.kyc_current_level``, ...). It runs
for every event, so it is plain dict building: no copies of records beyond the prefixed keys.
Keys starting with ``_`` are internal (``_missing``, ``_customer_id``, ``_event_id``,
``_topic``, ``_ts``: when the event happened, for the latency histogram) and never render as
placeholders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokerflow.workflow.catalog import TRADE_TRIGGERS
from brokerflow.workflow.events import Event
from brokerflow.workflow.reference import Links, ReferenceData, TradeLinks

_AMOUNT_TRIGGERS = frozenset(TRADE_TRIGGERS)
_KYC_FIELDS = (("kyc.step_code", "step_code"), ("kyc.level", "level"), ("kyc.status", "status"))
# A trade record's key order -> ("trade.<key>", ...): producers send one shape, so the
# prefixed names are made once; bounded against a producer that sends ever new keys.
_TRADE_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}
_TRADE_SHAPES_MAX = 256
_TRADE_SHAPES_PER_LOGIN = 8


def _customer_id(topic: str, record: Mapping[str, Any], account: Mapping | None,
                 customer: Mapping | None) -> Any:
    if customer is not None and customer.get("id") is not None:
        return customer["id"]
    if topic == "kyc.step.push":
        return record.get("customer_id")
    if topic == "customer.push":
        return record.get("id")
    return account.get("customer_id") if account is not None else None


def build_context(trigger: str, event: Event, refs: ReferenceData, links: Links | None = None) -> dict[str, Any]:
    """Everything a rule of ``trigger`` may test about ``event``, flat and keyed by field name.

    ``links`` is ``refs.resolve(event)`` when the caller has it already (no second lookup).
    """
    if links is None:
        trade = refs.trade_links(event.record.get("login")) if event.topic == "trade.push" else None
        if trade is not None:
            return _trade_context(trigger, event, refs, trade)
        links = refs.resolve(event)
    brand, account, group, customer = links
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
    ctx["_ts"] = event_ts_ms(event)
    return ctx


def routed_context(trigger: str, event: Event, refs: ReferenceData) -> tuple[str | None, dict[str, Any] | None]:
    """The router's per-event step: the brand and, only when there is one, the context.

    One replica lookup serves both (a trade's is cached per login), and an event no rule can
    run for (no brand) costs no context.
    """
    if event.topic == "trade.push":
        trade = refs.trade_links(event.record.get("login"))
        if trade is None or trade.links.brand is None:
            return None, None
        return trade.links.brand, _trade_context(trigger, event, refs, trade)
    links = refs.resolve(event)
    return links.brand, None if links.brand is None else build_context(trigger, event, refs, links)


def _trade_keys(record: Mapping[str, Any]) -> tuple[str, ...]:
    shape = tuple(record)
    keys = _TRADE_KEYS.get(shape)
    if keys is None:
        if len(_TRADE_KEYS) >= _TRADE_SHAPES_MAX:
            _TRADE_KEYS.clear()
        keys = _TRADE_KEYS[shape] = tuple("trade." + k for k in shape)
    return keys


def _trade_template(trade: TradeLinks, keys: tuple[str, ...]) -> dict[str, Any]:
    """A trade context of this login and record shape with the per-event values left None.

    Copying it and filling those in gives the very dict ``build_context`` builds key by key
    (same keys, same order) without growing a dict five times per event.
    """
    account, customer = trade.account, trade.customer
    template: dict[str, Any] = {"brand": trade.links.brand, **dict.fromkeys(keys), "amount_usd": None}
    template.update({"account." + k: v for k, v in account.items()})
    if customer is not None:
        template.update({"customer." + k: v for k, v in customer.items()})
    template.update(_missing=None, _customer_id=_customer_id("trade.push", {}, account, customer),
                    _event_id=None, _topic="trade.push", _ts=None)
    if len(trade.contexts) >= _TRADE_SHAPES_PER_LOGIN:
        trade.contexts.clear()
    trade.contexts[keys] = template
    return template


def _trade_context(trigger: str, event: Event, refs: ReferenceData, trade: TradeLinks) -> dict[str, Any]:
    """``build_context`` of a trade of a known account, from its cached links and template."""
    if trigger not in _AMOUNT_TRIGGERS:
        return build_context(trigger, event, refs, trade.links)
    record = event.record
    keys = _trade_keys(record)
    template = trade.contexts.get(keys)
    ctx = (template or _trade_template(trade, keys)).copy()
    ctx.update(zip(keys, record.values(), strict=True))
    value, reason = refs.trade_amount_usd(record, trade)
    ctx["amount_usd"] = value
    ctx["_missing"] = {} if value is not None else {"amount_usd": f"amount_usd unknown: {reason}"}
    ctx["_event_id"] = event.key
    ctx["_ts"] = event_ts_ms(event)
    return ctx


def event_ts_ms(event: Event) -> int:
    """When the event happened: its ``ts``, else when it arrived (the run log measures from it)."""
    ts = event.ts_ms
    return event.received_ms if ts is None else ts


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
