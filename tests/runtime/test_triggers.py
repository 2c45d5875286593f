"""Every row of the seed's trigger mapping, end to end: one event fires its trigger and no other."""

from __future__ import annotations

from brokerflow.workflow.catalog import EVENT_TRIGGERS
from tests.runtime.conftest import notify

BUY, SELL, IN, OUT = "OP_BUY", "OP_SELL", "OP_BALANCE_IN", "OP_BALANCE_OUT"


def trade(cmd: str, order: int, **extra: object) -> dict:
    return {"order": order, "login": 1001, "cmd": cmd, "volume": 100, "symbol": "EURUSD", "profit": 10.0, **extra}


# (topic, event, record, trigger the seed maps it to, or None)
MAPPING = [
    ("trade.push", "EV_RECORD_ADD", trade(BUY, 1), "trade.opened"),
    ("trade.push", "EV_RECORD_ADD", trade(SELL, 2), "trade.opened"),
    ("trade.push", "EV_RECORD_ACTIVATE_TRADE", trade(BUY, 3), "trade.opened"),
    ("trade.push", "EV_RECORD_ACTIVATE_TRADE", trade(SELL, 4), "trade.opened"),
    ("trade.push", "EV_RECORD_CLOSE_TRADE", trade(BUY, 5), "trade.closed"),
    ("trade.push", "EV_RECORD_CLOSE_TRADE", trade(SELL, 6), "trade.closed"),
    ("trade.push", "EV_RECORD_ADD", trade(IN, 7), "deposit.created"),
    ("trade.push", "EV_RECORD_ADD", trade(OUT, 8, profit=-10.0), "withdrawal.created"),
    ("account.push", "EV_RECORD_ADD", {"login": 1005, "group": "real-usd", "customer_id": 501}, "account:added"),
    ("account.push", "EV_RECORD_UPDATE", {"login": 1001, "leverage": 200}, "account:updated"),
    ("account.push", "EV_RECORD_DELETE", {"login": 1003}, "account:deleted"),
    ("customer.push", "EV_RECORD_ADD", {"id": 504, "brand": "alpha", "email": "new@example.com"},
     "customer.created"),
    ("customer.push", "EV_RECORD_UPDATE", {"id": 501, "country": "AT"}, "customer.updated"),
    ("kyc.step.push", None, {"customer_id": 501, "step_code": "ID", "level": 1, "status": "approved"},
     "kyc.step.approved"),
    ("kyc.step.push", None, {"customer_id": 501, "step_code": "POA", "level": 1, "status": "rejected"},
     "kyc.step.rejected"),
    # Rows the seed does not have fire nothing.
    ("trade.push", "EV_RECORD_UPDATE", trade(BUY, 9), None),
    ("trade.push", "EV_RECORD_DELETE", trade(BUY, 10), None),
    ("trade.push", "EV_RECORD_ACTIVATE_TRADE", trade(IN, 11), None),
    ("trade.push", "EV_RECORD_CLOSE_TRADE", trade(OUT, 12), None),
    ("customer.push", "EV_RECORD_DELETE", {"id": 503}, None),
    ("kyc.step.push", None, {"customer_id": 501, "step_code": "ID", "level": 1, "status": "pending"}, None),
    ("group.push", "EV_RECORD_ADD", {"group": "extra", "brand": "alpha", "currency": "USD"}, None),
    ("manager.push", "EV_RECORD_ADD", {"id": 20, "enabled": True, "brand": "alpha"}, None),
    ("rate.push", None, {"currency": "GBP", "usd": 1.25}, None),
]


def test_each_row_of_the_mapping_fires_exactly_its_trigger(runtime):
    rules = {trigger: runtime.rule(trigger, [notify(trigger, manager_id=7)], name=trigger)
             for trigger in EVENT_TRIGGERS}
    by_id = {rule["id"]: trigger for trigger, rule in rules.items()}
    seen = 0
    wrong = []
    for topic, event, record, expected in MAPPING:
        runtime.publish(topic, record, event=event)
        runtime.settle()
        runs = runtime.runs()
        fired = sorted(by_id[run["rule_id"]] for run in runs[: len(runs) - seen])
        seen = len(runs)
        if fired != ([expected] if expected else []):
            wrong.append((topic, event, record.get("cmd") or record.get("status"), expected, fired))
    assert wrong == []
    assert sorted({by_id[run["rule_id"]] for run in runtime.runs()}) == sorted(EVENT_TRIGGERS)


def test_a_run_records_its_rule_trigger_brand_and_event(runtime):
    rule = runtime.rule("trade.opened", [notify("opened {{trade.order}}", manager_id=7)])
    runtime.publish("trade.push", trade(BUY, 4711), id="mt5-4711")
    run = runtime.wait_run(rule)
    assert run["rule_id"] == rule["id"] and run["rule_version"] == 1
    assert (run["trigger"], run["brand"], run["event_id"], run["status"]) == (
        "trade.opened", "alpha", "mt5-4711", "success")
    assert [(a["type"], a["status"]) for a in run["actions"]] == [("notify.manager", "success")]
    assert run["started_at"] <= run["finished_at"]
    assert "error" not in run


def test_an_event_without_an_id_is_logged_by_source_and_seq(runtime):
    rule = runtime.rule("trade.opened", [notify("x", manager_id=7)])
    seq = runtime.publish("trade.push", trade(BUY, 1), source="mt5-live")
    assert runtime.wait_run(rule)["event_id"] == f"mt5-live:{seq}"


def test_account_deleted_rules_still_see_the_account_which_is_then_removed(runtime):
    rule = runtime.rule("account:deleted", [notify("gone {{account.name}}", manager_id=7)],
                        [{"field": "account.name", "op": "==", "value": "Direct"}])
    runtime.publish("account.push", {"login": 1003}, event="EV_RECORD_DELETE")
    assert runtime.wait_run(rule)["status"] == "success"
    runtime.settle()
    assert runtime.notifications()[-1]["message"] == "gone Direct"
    assert runtime.call("MngGetAccounts", {"login": 1003})["records"] == []
