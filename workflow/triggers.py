"""Bus event -> rule trigger: exactly the rule engine's trigger mapping, nothing more.

Events that map to no trigger (trade updates, deletes, kyc steps in other states, reference
topics) still update the reference replica; they just fire no rule.
"""

from __future__ import annotations

from brokerflow.workflow.events import Event

_TRADE: dict[tuple[str, str], str] = {
    ("EV_RECORD_ADD", "OP_BUY"): "trade.opened",
    ("EV_RECORD_ADD", "OP_SELL"): "trade.opened",
    ("EV_RECORD_ACTIVATE_TRADE", "OP_BUY"): "trade.opened",
    ("EV_RECORD_ACTIVATE_TRADE", "OP_SELL"): "trade.opened",
    ("EV_RECORD_CLOSE_TRADE", "OP_BUY"): "trade.closed",
    ("EV_RECORD_CLOSE_TRADE", "OP_SELL"): "trade.closed",
    ("EV_RECORD_ADD", "OP_BALANCE_IN"): "deposit.created",
    ("EV_RECORD_ADD", "OP_BALANCE_OUT"): "withdrawal.created",
}
_ACCOUNT = {
    "EV_RECORD_ADD": "account:added",
    "EV_RECORD_UPDATE": "account:updated",
    "EV_RECORD_DELETE": "account:deleted",
}
_CUSTOMER = {"EV_RECORD_ADD": "customer.created", "EV_RECORD_UPDATE": "customer.updated"}
_KYC_STATUS = {"approved": "kyc.step.approved", "rejected": "kyc.step.rejected"}


def map_trigger(event: Event) -> str | None:
    """The trigger ``event`` fires, or None when the trigger mapping has no row for it."""
    if event.topic == "trade.push":
        return _TRADE.get((event.event, event.record.get("cmd")))
    if event.topic == "account.push":
        return _ACCOUNT.get(event.event)
    if event.topic == "customer.push":
        return _CUSTOMER.get(event.event)
    if event.topic == "kyc.step.push":
        return _KYC_STATUS.get(event.record.get("status"))
    return None
