"""Every condition field of the catalog, evaluated by the running engine on real events.

Each field gets two rules: one whose condition holds for the event and one whose condition
does not. After the events went through, exactly the holding rules have a run.
"""

from __future__ import annotations

from brokerflow.workflow.catalog import EVENT_TRIGGERS, FIELDS
from tests.runtime.conftest import notify

CLOSE = ("trade.push", "EV_RECORD_CLOSE_TRADE",
         {"order": 4242, "login": 1001, "cmd": "OP_BUY", "volume": 1000, "symbol": "EURUSD",
          "open_price": 1.1, "close_price": 1.2345, "profit": -12.5, "comment": "tp hit"})
KYC = ("kyc.step.push", None, {"customer_id": 501, "step_code": "ID", "level": 1, "status": "approved"})
CUSTOMER = ("customer.push", "EV_RECORD_UPDATE", {"id": 502, "risk_level": "high"})
ACCOUNT = ("account.push", "EV_RECORD_UPDATE", {"login": 1002, "leverage": 30})

# field -> (trigger, condition that holds, condition that does not)
CASES = {
    "brand": ("trade.closed", ("==", "alpha"), ("==", "beta")),
    "amount_usd": ("trade.closed", (">=", 12.5), (">", 12.5)),
    "trade.order": ("trade.closed", ("==", 4242), ("!=", 4242)),
    "trade.login": ("trade.closed", ("in", [1001, 1002]), ("not_in", [1001])),
    "trade.cmd": ("trade.closed", ("==", "OP_BUY"), ("==", "OP_SELL")),
    "trade.volume": ("trade.closed", (">=", 1000), ("<", 1000)),
    "trade.close_price": ("trade.closed", (">", 1.2), ("<=", 1.2)),
    "trade.symbol": ("trade.closed", ("starts_with", "EUR"), ("ends_with", "JPY")),
    "trade.comment": ("trade.closed", ("contains", "tp"), ("matches", "^sl")),
    "account.login": ("trade.closed", ("==", 1001), ("==", 1002)),
    "account.group": ("trade.closed", ("==", "real-usd"), ("starts_with", "demo")),
    "account.name": ("trade.closed", ("==", "Al"), ("!=", "Al")),
    "account.email": ("trade.closed", ("ends_with", "@example.com"), ("contains", "alpha")),
    "account.country": ("trade.closed", ("in", ["DE", "AT"]), ("not_in", ["DE"])),
    "account.enable": ("trade.closed", ("==", True), ("==", False)),
    "account.leverage": ("trade.closed", ("<=", 100), (">", 100)),
    "customer.id": ("trade.closed", ("==", 501), ("==", 502)),
    "customer.brand": ("trade.closed", ("==", "alpha"), ("==", "beta")),
    "customer.country": ("trade.closed", ("==", "DE"), ("==", "FR")),
    "customer.language": ("trade.closed", ("in", ["de"]), ("in", ["fr"])),
    "customer.email": ("trade.closed", ("matches", r"^al@"), ("matches", r"^bo@")),
    "customer.kyc_status": ("trade.closed", ("==", "none"), ("==", "verified")),
    "customer.kyc_current_level": ("trade.closed", ("<", 1), (">=", 1)),
    "customer.risk_level": ("trade.closed", ("==", "low"), ("==", "high")),
    "customer.status": ("trade.closed", ("==", "active"), ("==", "blocked")),
    "kyc.step_code": ("kyc.step.approved", ("==", "ID"), ("==", "POA")),
    "kyc.level": ("kyc.step.approved", ("==", 1), ("==", 2)),
    "kyc.status": ("kyc.step.approved", ("==", "approved"), ("!=", "approved")),
}
# The same kind of fields seen through the other triggers' records.
OTHER_TRIGGERS = [
    ("customer.updated", "customer.risk_level", ("==", "high"), ("==", "low")),  # the pushed value
    ("customer.updated", "customer.email", ("==", "bo@example.com"), ("==", "al@example.com")),  # kept
    ("kyc.step.approved", "customer.kyc_current_level", ("==", 0), ("==", 1)),
    ("account:updated", "account.leverage", ("==", 30), ("==", 50)),  # the pushed value
    ("account:updated", "customer.id", ("==", 502), ("==", 501)),
    ("account:updated", "brand", ("==", "alpha"), ("==", "beta")),
]


def send(runtime, message: tuple) -> None:
    topic, event, record = message
    runtime.publish(topic, record, event=event)


def event_trigger_fields() -> set[str]:
    return {name for name, spec in FIELDS.items() if spec.triggers & set(EVENT_TRIGGERS)}


def test_the_table_covers_every_field_an_event_rule_may_test():
    assert set(CASES) == event_trigger_fields()


def test_every_condition_field_holds_and_fails_as_the_event_says(runtime):
    expected: dict[int, tuple[str, str, bool]] = {}
    cases = [(trigger, field, holds, fails) for field, (trigger, holds, fails) in CASES.items()]
    for trigger, field, holds, fails in cases + OTHER_TRIGGERS:
        for condition, should_fire in ((holds, True), (fails, False)):
            op, value = condition
            rule = runtime.rule(trigger, [notify("n", manager_id=7)],
                                [{"field": field, "op": op, "value": value}], name=f"{field} {op} {value}")
            expected[rule["id"]] = (trigger, f"{field} {op} {value!r}", should_fire)
    for message in (CLOSE, KYC, CUSTOMER, ACCOUNT):
        send(runtime, message)
    runtime.settle()
    fired = {run["rule_id"] for run in runtime.runs()}
    wrong = [(trigger, name, "should fire" if should else "should not fire")
             for rule_id, (trigger, name, should) in expected.items() if (rule_id in fired) != should]
    assert wrong == []
    assert all(run["status"] == "success" for run in runtime.runs())


def test_all_conditions_of_a_rule_must_hold(runtime):
    both = runtime.rule("trade.closed", [notify("n", manager_id=7)], [
        {"field": "trade.symbol", "op": "==", "value": "EURUSD"},
        {"field": "amount_usd", "op": ">", "value": 10},
        {"field": "customer.country", "op": "==", "value": "DE"}])
    one_fails = runtime.rule("trade.closed", [notify("n", manager_id=7)], [
        {"field": "trade.symbol", "op": "==", "value": "EURUSD"},
        {"field": "amount_usd", "op": ">", "value": 10},
        {"field": "customer.country", "op": "==", "value": "FR"}])
    send(runtime, CLOSE)
    runtime.settle()
    assert [run["rule_id"] for run in runtime.runs()] == [both["id"]]
    assert one_fails["id"] not in {run["rule_id"] for run in runtime.runs()}


def test_a_condition_on_a_field_the_event_lacks_does_not_hold(runtime):
    # Account 1003 has no customer: customer fields are absent, so even != does not hold.
    rule = runtime.rule("deposit.created", [notify("n", manager_id=7)],
                        [{"field": "customer.country", "op": "!=", "value": "DE"}])
    runtime.deposit(1003, 100)
    runtime.settle()
    assert runtime.runs(rule_id=rule["id"]) == []
