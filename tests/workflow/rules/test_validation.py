"""Rule validation: every trigger, field, operator and action of the catalog, valid and invalid."""

from __future__ import annotations

import copy

import pytest

from brokerflow.errors import ValidationFailed
from brokerflow.workflow.catalog import ACTIONS, ALL_OPS, ALL_TRIGGERS, FIELDS, OPERATORS, ROLES
from brokerflow.workflow.rules.validation import Problem, Validation, check_rule, normalize_rule, validate_rule

NOTIFY = {"type": "notify.manager", "params": {"message": "hello"}}
MODE_EXTRAS = {
    "interval": {"schedule": {"cron": "*/5 * * * *"}, "run_as": 1},
    "timestamp": {"schedule": {"at": "2026-11-23T12:00:00Z"}, "run_as": 1},
    "sink.request": {"run_as": 1},
}


def make_rule(trigger="deposit.created", conditions=None, actions=None, **extra):
    rule = {"name": "r", "brand": "acme", "trigger": trigger,
            "conditions": [] if conditions is None else conditions,
            "actions": [NOTIFY] if actions is None else actions}
    rule.update(MODE_EXTRAS.get(trigger, {}) if isinstance(trigger, str) else {})
    rule.update(extra)
    return rule


def cond(field, op="==", value="x", trigger=None):
    trigger = trigger or sorted(FIELDS[field].triggers)[0]
    return make_rule(trigger, [{"field": field, "op": op, "value": value}])


def act(kind, params, trigger="customer.updated", **extra):
    return make_rule(trigger, actions=[{"type": kind, "params": params}], **extra)


def errors(rule):
    return [(p.path, p.message) for p in validate_rule(rule).errors]


def error_paths(rule):
    return [p.path for p in validate_rule(rule).errors]


def warning_paths(rule):
    return [p.path for p in validate_rule(rule).warnings]


def clean(rule):
    return validate_rule(rule).as_dict() == {"valid": True, "errors": [], "warnings": []}


# ---------------------------------------------------------------- results and normalization

def test_problem_is_frozen_and_serializes():
    problem = Problem("conditions[0].op", "bad")
    assert problem.as_dict() == {"path": "conditions[0].op", "message": "bad"}
    with pytest.raises(AttributeError):
        problem.path = "x"


def test_validation_as_dict_is_the_protocol_body():
    v = Validation()
    assert v.valid
    v.warn("actions", "w")
    assert v.valid
    v.error("name", "e")
    assert v.as_dict() == {"valid": False, "errors": [{"path": "name", "message": "e"}],
                           "warnings": [{"path": "actions", "message": "w"}]}


def test_normalize_fills_defaults():
    rule = normalize_rule({"name": "n", "brand": "b", "trigger": "manual"})
    assert rule == {"name": "n", "brand": "b", "trigger": "manual", "status": "active", "priority": 100,
                    "conditions": [], "actions": [], "exec_roles": [], "run_as": None, "schedule": None,
                    "cooldown": None}


def test_normalize_treats_none_as_missing_and_keeps_given_values():
    rule = normalize_rule({"status": None, "priority": 5, "conditions": None, "run_as": 3})
    assert (rule["status"], rule["priority"], rule["conditions"], rule["run_as"]) == ("active", 5, [], 3)


def test_normalize_keeps_ids_and_audit_fields_and_drops_unknown_keys():
    given = {"id": 4, "version": 2, "created_at": 1, "created_by": "a", "updated_at": 2, "updated_by": "b",
             "junk": 1, "matched": True}
    rule = normalize_rule(given)
    kept = {k: v for k, v in given.items() if k not in ("junk", "matched")}
    assert {k: rule[k] for k in kept} == kept
    assert "junk" not in rule and "matched" not in rule


def test_normalize_copies_deeply():
    given = make_rule()
    rule = normalize_rule(given)
    rule["actions"][0]["params"]["message"] = "changed"
    assert given["actions"][0]["params"]["message"] == "hello"


def test_normalize_refuses_a_non_map():
    with pytest.raises(ValidationFailed):
        normalize_rule([1])


@pytest.mark.parametrize("rule", [None, [], "rule", 3])
def test_a_rule_that_is_not_a_map_is_one_error(rule):
    assert errors(rule) == [("rule", "must be a map")]


def test_validation_does_not_change_the_rule():
    rule = make_rule(conditions=[{"field": "amount_usd", "op": ">", "value": 1}], junk=1)
    before = copy.deepcopy(rule)
    validate_rule(rule)
    check_rule(rule)
    assert rule == before


def test_unknown_rule_keys_are_warned_and_ignored():
    assert warning_paths(make_rule(junk=1, colour="red")) == ["junk", "colour"]


# ---------------------------------------------------------------- header

@pytest.mark.parametrize("trigger", ALL_TRIGGERS)
def test_a_minimal_rule_is_clean_on_every_trigger(trigger):
    assert clean(make_rule(trigger))


@pytest.mark.parametrize("trigger", ["trade.open", "Trade.Opened", "account.added", "", 5, ["manual"]])
def test_unknown_triggers_are_errors(trigger):
    assert error_paths(make_rule(trigger)) == ["trigger"]


def test_a_missing_trigger_is_an_error():
    rule = make_rule()
    del rule["trigger"]
    assert errors(rule) == [("trigger", "is required")]


@pytest.mark.parametrize(("name", "ok"), [("n", True), ("x" * 200, True), ("x" * 201, False), ("", False),
                                          ("   ", False), (None, False), (5, False)])
def test_name_is_a_non_empty_string_of_at_most_200(name, ok):
    assert error_paths(make_rule(name=name)) == ([] if ok else ["name"])


@pytest.mark.parametrize("brand", ["", " ", None, 1, ["acme"]])
def test_brand_is_a_non_empty_string(brand):
    assert error_paths(make_rule(brand=brand)) == ["brand"]


@pytest.mark.parametrize(("status", "ok"), [("active", True), ("disabled", True), ("archived", True),
                                            ("paused", False), ("ACTIVE", False), (1, False)])
def test_status_is_one_of_three(status, ok):
    assert error_paths(make_rule(status=status)) == ([] if ok else ["status"])


@pytest.mark.parametrize(("priority", "ok"), [(0, True), (-5, True), (100, True), (1.5, False), ("1", False),
                                              (True, False)])
def test_priority_is_an_integer(priority, ok):
    assert error_paths(make_rule(priority=priority)) == ([] if ok else ["priority"])


# ---------------------------------------------------------------- fields x triggers

SAMPLE = {"string": "x", "number": 1.5, "integer": 2, "boolean": True, "any": "x"}


def _concrete(name):
    return name.replace("*", "key")


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_every_field_is_accepted_exactly_on_the_triggers_that_provide_it(field):
    spec = FIELDS[field]
    for trigger in ALL_TRIGGERS:
        rule = make_rule(trigger, [{"field": _concrete(field), "op": "==", "value": SAMPLE[spec.type]}])
        found = errors(rule)
        if trigger in spec.triggers:
            assert found == [], (trigger, found)
        else:
            assert [path for path, _ in found] == ["conditions[0].field"], trigger
            assert f"not provided by trigger {trigger!r}" in found[0][1]
            assert all(t in found[0][1] for t in spec.triggers)


@pytest.mark.parametrize("field", ["trade.profit", "customer.phone", "request.headers.", "input", "brand.x",
                                   "account.customer_id", "*"])
def test_unknown_fields_are_errors(field):
    rule = make_rule("manual", [{"field": field, "op": "==", "value": 1}])
    assert errors(rule) == [("conditions[0].field", f"unknown field {field!r}")]


@pytest.mark.parametrize("field", [None, "", 5])
def test_a_condition_needs_a_field(field):
    rule = make_rule(conditions=[{"field": field, "op": "==", "value": 1}])
    assert error_paths(rule) == ["conditions[0].field"]


# ---------------------------------------------------------------- operators x types

FIELD_OF_TYPE = {
    "string": ("account.group", "account:added"),
    "number": ("amount_usd", "deposit.created"),
    "integer": ("trade.volume", "trade.opened"),
    "boolean": ("account.enable", "account:updated"),
    "any": ("request.query.page", "sink.request"),
}
_EQ = {"string": (["real\\eu", ""], [1, None, ["a"]]),
       "number": ([1000, 2.5, -1], ["1000", True, None]),
       "integer": ([1000, 0], [1.5, "1", False]),
       "boolean": ([True, False], [1, "true", None]),
       "any": (["2", 2, 2.5, True], [None, [1], {"a": 1}])}
_ORDER = {"number": ([1, 2.5], ["1", True, None, [1]]),
          "integer": ([1000], [10.5, "1", True]),
          "any": ([3, "b", 1.5], [True, None, [1]])}
_LIST = {"string": ([["a", "b"], []], ["a", [1], ["a", None]]),
         "number": ([[1, 2.5]], [1, ["1"], [True]]),
         "integer": ([[100, 200]], [100, [1.5], [False]]),
         "any": ([["a", 1, True]], ["a", [None], [[1]]])}
_TEXT = {"string": (["eu", ""], [1, None, ["eu"]]), "any": (["eu"], [1, None])}
_REGEX = {"string": (["^real\\\\", "a|b"], ["(", "[a-", 1, None]), "any": (["^\\d+$"], ["(", 5])}
VALUES = {"==": _EQ, "!=": _EQ, ">": _ORDER, ">=": _ORDER, "<": _ORDER, "<=": _ORDER, "in": _LIST,
          "not_in": _LIST, "contains": _TEXT, "starts_with": _TEXT, "ends_with": _TEXT, "matches": _REGEX}
OP_CASES = [(kind, op) for kind in FIELD_OF_TYPE for op in ALL_OPS]


def test_the_operator_table_covers_every_allowed_pair():
    allowed = {(kind, op) for kind, op in OP_CASES if op in OPERATORS[kind]}
    assert allowed == {(kind, op) for op, table in VALUES.items() for kind in table}


@pytest.mark.parametrize(("kind", "op"), OP_CASES)
def test_every_operator_on_every_type(kind, op):
    field, trigger = FIELD_OF_TYPE[kind]
    if op not in OPERATORS[kind]:
        found = errors(make_rule(trigger, [{"field": field, "op": op, "value": SAMPLE[kind]}]))
        assert [path for path, _ in found] == ["conditions[0].op"]
        assert f"not valid for {kind} field" in found[0][1]
        return
    good, bad = VALUES[op][kind]
    for value in good:
        assert errors(make_rule(trigger, [{"field": field, "op": op, "value": value}])) == [], value
    for value in bad:
        rule = make_rule(trigger, [{"field": field, "op": op, "value": value}])
        assert error_paths(rule) == ["conditions[0].value"], value


@pytest.mark.parametrize("op", [None, "=", "eq", "IN", "like", 3])
def test_unknown_operators_are_errors(op):
    rule = make_rule(conditions=[{"field": "amount_usd", "op": op, "value": 1}])
    assert error_paths(rule) == ["conditions[0].op"]


def test_messages_say_what_is_wrong_with_a_value():
    rule = make_rule(conditions=[
        {"field": "amount_usd", "op": "in", "value": [1, "2"]},
        {"field": "amount_usd", "op": ">", "value": "big"},
    ])
    assert errors(rule) == [
        ("conditions[0].value", "element [1] must be a number, got '2'"),
        ("conditions[1].value", "must be a number for a number field, got 'big'"),
    ]


def test_a_bad_regex_names_the_regex_error():
    rule = cond("account.group", "matches", "(")
    assert errors(rule)[0][1].startswith("is not a valid regular expression")


# ---------------------------------------------------------------- condition shapes

def test_conditions_must_be_a_list():
    assert error_paths(make_rule(conditions={"field": "brand"})) == ["conditions"]


def test_each_condition_must_be_a_map():
    rule = make_rule(conditions=[{"field": "brand", "op": "==", "value": "a"}, "brand == a"])
    assert error_paths(rule) == ["conditions[1]"]


def test_a_condition_needs_a_value():
    rule = make_rule(conditions=[{"field": "brand", "op": "=="}])
    assert errors(rule) == [("conditions[0].value", "is required")]


def test_paths_carry_the_condition_index():
    rule = make_rule(conditions=[{"field": "brand", "op": "==", "value": "a"},
                                 {"field": "amount_usd", "op": "matches", "value": 1},
                                 {"field": "trade.symbol", "op": "contains", "value": 1}])
    assert error_paths(rule) == ["conditions[1].op", "conditions[2].value"]


def test_the_seed_deposit_kyc_rule_is_valid_with_a_customer_warning():
    rule = make_rule("deposit.created", [
        {"field": "amount_usd", "op": ">=", "value": 1},
        {"field": "customer.kyc_current_level", "op": "<", "value": 1},
    ], [{"type": "kyc.set_required_level", "params": {"level": 1}}])
    result = validate_rule(rule)
    assert result.valid
    assert [p.path for p in result.warnings] == ["actions[0].type"]
    assert "may have no linked customer" in result.warnings[0].message


def test_the_seed_lot_rule_uses_integer_volume():
    assert clean(make_rule("trade.opened", [
        {"field": "trade.volume", "op": ">=", "value": 1000},
        {"field": "trade.cmd", "op": "in", "value": ["OP_BUY", "OP_SELL"]},
    ]))


# ---------------------------------------------------------------- actions

VALID_ACTIONS = [
    ("notify.manager", "trade.opened", {"message": "login {{trade.login}} opened", "manager_id": 7}),
    ("customer.set_risk_level", "customer.updated", {"risk_level": "high"}),
    ("customer.set_status", "kyc.step.rejected", {"status": "blocked"}),
    ("kyc.require_step", "customer.created", {"step_code": "POA", "level": 1, "reason": "big deposit"}),
    ("kyc.set_required_level", "customer.beforeUpdate", {"level": 2, "reason": "r"}),
    ("webhook.send", "deposit.created", {"url": "https://example.com/webhook", "method": "POST",
                                         "headers": {"Content-Type": "application/json"},
                                         "body": "{\"text\":\"High risk trade\"}", "timeout_ms": 5000}),
    ("email.send", "email.received", {"to": "ops@example.com", "subject": "Re: {{email.subject}}",
                                      "body": "from {{email.from}}"}),
    ("record.set", "account.beforeCreate", {"field": "leverage", "value": 100}),
    ("operation.reject", "customer.beforeCreate", {"message": "country {{customer.country}} is closed"}),
    ("sink.respond", "sink.request", {"status": 201, "headers": {"X-A": "b"}, "body": "ok"}),
    ("event.emit", "sink.request", {"topic": "kyc.step.push",
                                    "record": {"customer_id": "{{request.body.customer_id}}"}}),
]
WRONG_TYPES = {"string": 5, "integer": "5", "number": "5", "map": "k=v"}


def test_the_valid_action_table_covers_every_action():
    assert {row[0] for row in VALID_ACTIONS} == set(ACTIONS)


@pytest.mark.parametrize(("kind", "trigger", "params"), VALID_ACTIONS)
def test_every_action_is_clean_with_good_params(kind, trigger, params):
    assert clean(act(kind, params, trigger))


@pytest.mark.parametrize(("kind", "trigger", "params"), VALID_ACTIONS)
def test_every_action_reports_each_missing_required_param(kind, trigger, params):
    required = [p.name for p in ACTIONS[kind].params if p.required]
    assert errors(act(kind, {}, trigger)) == [(f"actions[0].params.{name}", "required parameter is missing")
                                              for name in required]


@pytest.mark.parametrize(("kind", "trigger", "params"), VALID_ACTIONS)
def test_every_action_reports_each_wrongly_typed_param(kind, trigger, params):
    for param in ACTIONS[kind].params:
        if param.type == "any":
            continue
        broken = {**params, param.name: WRONG_TYPES[param.type]}
        assert error_paths(act(kind, broken, trigger)) == [f"actions[0].params.{param.name}"], param.name


@pytest.mark.parametrize(("kind", "trigger", "params"), VALID_ACTIONS)
def test_every_action_warns_about_unknown_params(kind, trigger, params):
    result = validate_rule(act(kind, {**params, "colour": "red"}, trigger))
    assert result.valid
    assert [p.path for p in result.warnings] == ["actions[0].params.colour"]


@pytest.mark.parametrize("kind", ["notify.manager", "customer.set_risk_level", "customer.set_status",
                                  "kyc.require_step", "email.send", "operation.reject", "record.set"])
def test_required_strings_must_not_be_blank(kind):
    params = dict(next(row[2] for row in VALID_ACTIONS if row[0] == kind))
    trigger = next(row[1] for row in VALID_ACTIONS if row[0] == kind)
    name = next(p.name for p in ACTIONS[kind].params if p.required and p.type == "string")
    params[name] = "  "
    assert errors(act(kind, params, trigger)) == [(f"actions[0].params.{name}", "must not be empty")]


def test_record_set_may_set_a_null_value():
    assert clean(act("record.set", {"field": "leverage", "value": None}, "account.beforeUpdate"))


def test_optional_params_may_be_null():
    assert clean(act("notify.manager", {"message": "m", "manager_id": None}))


RESTRICTED = [(kind, trigger) for kind, spec in ACTIONS.items() if spec.triggers is not None
              for trigger in ALL_TRIGGERS if trigger not in spec.triggers]


@pytest.mark.parametrize(("kind", "trigger"), RESTRICTED)
def test_actions_are_refused_on_triggers_they_do_not_serve(kind, trigger):
    params = next(row[2] for row in VALID_ACTIONS if row[0] == kind)
    found = errors(act(kind, params, trigger))
    assert found[0][0] == "actions[0].type"
    assert f"not allowed on trigger {trigger!r}" in found[0][1]


@pytest.mark.parametrize("kind", [k for k, spec in ACTIONS.items() if spec.triggers is None])
@pytest.mark.parametrize("trigger", ALL_TRIGGERS)
def test_unrestricted_actions_are_allowed_on_every_trigger(kind, trigger):
    params = next(row[2] for row in VALID_ACTIONS if row[0] == kind)
    params = {k: v for k, v in params.items() if k not in ("message", "subject", "body")}
    params |= {"notify.manager": {"message": "m"}, "email.send": {"subject": "s"}}.get(kind, {})
    assert errors(act(kind, params, trigger)) == []


CUSTOMER_ACTIONS = [
    ("customer.set_risk_level", {"risk_level": "high"}), ("customer.set_status", {"status": "x"}),
    ("kyc.require_step", {"step_code": "POA"}), ("kyc.set_required_level", {"level": 1}),
]


@pytest.mark.parametrize(("kind", "params"), CUSTOMER_ACTIONS)
@pytest.mark.parametrize("trigger", ["trade.opened", "trade.closed", "deposit.created", "withdrawal.created",
                                     "account:added", "account:updated", "account:deleted"])
def test_customer_actions_warn_where_the_account_may_have_no_customer(kind, params, trigger):
    result = validate_rule(act(kind, params, trigger))
    assert result.valid
    assert [p.path for p in result.warnings] == ["actions[0].type"]


@pytest.mark.parametrize(("kind", "params"), CUSTOMER_ACTIONS)
@pytest.mark.parametrize("trigger", ["customer.created", "customer.updated", "kyc.step.approved",
                                     "kyc.step.rejected", "customer.beforeUpdate"])
def test_customer_actions_are_clean_where_a_customer_is_certain(kind, params, trigger):
    assert clean(act(kind, params, trigger))


@pytest.mark.parametrize(
    ("manager_id", "ok"), [(0, True), (1, True), (-1, False), (1.0, False), (True, False)]
)
def test_notify_manager_id_is_a_non_negative_integer(manager_id, ok):
    rule = act("notify.manager", {"message": "m", "manager_id": manager_id})
    assert error_paths(rule) == ([] if ok else ["actions[0].params.manager_id"])


@pytest.mark.parametrize(("kind", "extra"), [("kyc.require_step", {"step_code": "POA"}),
                                             ("kyc.set_required_level", {})])
@pytest.mark.parametrize(("level", "ok"), [(0, True), (3, True), (-1, False), ("1", False), (1.5, False)])
def test_kyc_levels_are_non_negative_integers(kind, extra, level, ok):
    rule = act(kind, {**extra, "level": level})
    assert error_paths(rule) == ([] if ok else ["actions[0].params.level"])


@pytest.mark.parametrize(("url", "ok"), [
    ("https://example.com/webhook", True),
    ("http://10.0.0.5:8080/hook?a=1", True),
    ("https://hooks.example.com/{{trade.login}}", True),
    ("ftp://example.com/x", False),
    ("example.com/webhook", False),
    ("https:///path", False),
    ("/relative", False),
    ("http://[::1", False),
    ("", False),
])
def test_webhook_url_is_absolute_http_with_a_host(url, ok):
    rule = act("webhook.send", {"url": url}, "trade.opened")
    assert error_paths(rule) == ([] if ok else ["actions[0].params.url"])


@pytest.mark.parametrize(("method", "ok"), [("GET", True), ("POST", True), ("PUT", True), ("PATCH", True),
                                            ("DELETE", True), ("post", False), ("HEAD", False), (1, False)])
def test_webhook_method_is_one_of_five(method, ok):
    rule = act("webhook.send", {"url": "https://e.com", "method": method})
    assert error_paths(rule) == ([] if ok else ["actions[0].params.method"])


@pytest.mark.parametrize(("kind", "base"), [("webhook.send", {"url": "https://e.com"}), ("sink.respond", {})])
@pytest.mark.parametrize(("headers", "bad"), [({"A": "b", "C": "d"}, []), ({"A": 1}, ["A"]),
                                              ({"": "x", "B": None}, ["", "B"])])
def test_headers_map_strings_to_strings(kind, base, headers, bad):
    trigger = "sink.request" if kind == "sink.respond" else "manual"
    rule = act(kind, {**base, "headers": headers}, trigger)
    assert error_paths(rule) == [f"actions[0].params.headers.{name}" for name in bad]


@pytest.mark.parametrize(("timeout_ms", "warned"), [(1000, False), (5000, False), (30000, False),
                                                    (999, True), (30001, True), (0, True)])
def test_webhook_timeouts_outside_the_range_are_warned_as_clamped(timeout_ms, warned):
    result = validate_rule(act("webhook.send", {"url": "https://e.com", "timeout_ms": timeout_ms}))
    assert result.valid
    messages = [p.message for p in result.warnings if p.path == "actions[0].params.timeout_ms"]
    assert messages == ([f"{timeout_ms} will be clamped to 1000..30000"] if warned else [])


@pytest.mark.parametrize(("status", "ok"), [(100, True), (200, True), (599, True), (99, False), (600, False)])
def test_sink_respond_status_is_an_http_status(status, ok):
    rule = act("sink.respond", {"status": status}, "sink.request")
    assert error_paths(rule) == ([] if ok else ["actions[0].params.status"])


# ---------------------------------------------------------------- placeholders

@pytest.mark.parametrize(("kind", "param", "trigger"), [
    ("notify.manager", "message", "trade.opened"),
    ("webhook.send", "body", "trade.opened"),
    ("email.send", "subject", "trade.opened"),
    ("email.send", "body", "trade.opened"),
    ("operation.reject", "message", "account.beforeCreate"),
    ("sink.respond", "body", "sink.request"),
])
def test_placeholders_naming_no_catalog_field_are_warned(kind, param, trigger):
    base = {"notify.manager": {}, "webhook.send": {"url": "https://e.com"}, "email.send": {"to": "a@b.c",
            "subject": "s"}, "operation.reject": {}, "sink.respond": {}}[kind]
    rule = act(kind, {**base, param: "x {{trade.profit}} {{ brand }} {x} {\"a\": 1}"}, trigger)
    result = validate_rule(rule)
    assert result.valid
    assert [p.as_dict() for p in result.warnings] == [{
        "path": f"actions[0].params.{param}",
        "message": "{{trade.profit}} names no catalog field; it is sent verbatim"}]


def test_placeholders_not_provided_by_the_trigger_are_warned():
    rule = act("notify.manager", {"message": "{{trade.login}} {{customer.email}}"}, "customer.updated")
    assert [p.as_dict() for p in validate_rule(rule).warnings] == [{
        "path": "actions[0].params.message",
        "message": "{{trade.login}} is not provided by trigger 'customer.updated'; it is sent verbatim"}]


@pytest.mark.parametrize(("trigger", "text"), [
    ("manual", "{{input.amount}} by {{brand}}"),
    ("sink.request", "{{request.method}} {{request.query.page}} {{request.headers.x-id}}"),
    ("kyc.step.approved", "{{kyc.step_code}} L{{kyc.level}} {{customer.email}}"),
    ("withdrawal.created", "{{amount_usd}} {{account.group}} {{customer.risk_level}}"),
])
def test_placeholders_provided_by_the_trigger_are_clean(trigger, text):
    assert clean(act("notify.manager", {"message": text}, trigger))


# ---------------------------------------------------------------- action shapes

def test_a_rule_without_actions_is_warned():
    result = validate_rule(make_rule(actions=[]))
    assert result.valid
    assert [p.path for p in result.warnings] == ["actions"]


def test_actions_must_be_a_list():
    assert error_paths(make_rule(actions=NOTIFY)) == ["actions"]


def test_each_action_must_be_a_map():
    assert error_paths(make_rule(actions=[NOTIFY, "notify.manager"])) == ["actions[1]"]


@pytest.mark.parametrize("kind", ["notify", "webhook", "", None, 1, "Notify.Manager"])
def test_unknown_action_types_are_errors(kind):
    assert error_paths(make_rule(actions=[NOTIFY, {"type": kind, "params": {}}])) == ["actions[1].type"]


def test_params_must_be_a_map():
    rule = make_rule(actions=[{"type": "notify.manager", "params": ["m"]}])
    assert error_paths(rule) == ["actions[0].params"]


def test_absent_params_count_as_empty():
    assert errors(make_rule(actions=[{"type": "notify.manager"}])) == [
        ("actions[0].params.message", "required parameter is missing")]


# ---------------------------------------------------------------- automation modes

@pytest.mark.parametrize("cron", ["* * * * *", "*/5 * * * *", "0 9 * * 1-5", "30 2 1 * *"])
def test_interval_rules_take_a_five_field_cron(cron):
    assert clean(make_rule("interval", schedule={"cron": cron}))


@pytest.mark.parametrize(("schedule", "path"), [
    (None, "schedule"),
    ("*/5 * * * *", "schedule"),
    ({}, "schedule.cron"),
    ({"at": "2026-11-23T12:00:00Z"}, "schedule.cron"),
    ({"cron": "* * * *"}, "schedule.cron"),
    ({"cron": "0 * * * * *"}, "schedule.cron"),
    ({"cron": "61 * * * *"}, "schedule.cron"),
    ({"cron": "@hourly"}, "schedule.cron"),
    ({"cron": "a b c d e"}, "schedule.cron"),
    ({"cron": 5}, "schedule.cron"),
])
def test_interval_schedule_errors(schedule, path):
    assert error_paths(make_rule("interval", schedule=schedule)) == [path]


@pytest.mark.parametrize(
    "at", ["2026-11-23T12:00:00Z", "2026-11-23T14:00:00+02:00", "2026-11-23T12:00:00.5Z"]
)
def test_timestamp_rules_take_an_iso_time_with_zone(at):
    assert clean(make_rule("timestamp", schedule={"at": at}))


@pytest.mark.parametrize(("schedule", "path"), [
    (None, "schedule"),
    ({"cron": "* * * * *"}, "schedule.at"),
    ({"at": "2026-11-23T12:00:00"}, "schedule.at"),
    ({"at": "2026-11-23"}, "schedule.at"),
    ({"at": "soon"}, "schedule.at"),
    ({"at": 1795435200000}, "schedule.at"),
])
def test_timestamp_schedule_errors(schedule, path):
    assert error_paths(make_rule("timestamp", schedule=schedule)) == [path]


@pytest.mark.parametrize("trigger", [t for t in ALL_TRIGGERS if t not in ("interval", "timestamp")])
def test_a_schedule_on_other_triggers_is_warned_as_ignored(trigger):
    result = validate_rule(make_rule(trigger, schedule={"cron": "* * * * *"}))
    assert result.valid
    assert [p.path for p in result.warnings] == ["schedule"]


@pytest.mark.parametrize("trigger", ["interval", "timestamp", "sink.request"])
def test_run_as_is_required_where_no_user_starts_the_run(trigger):
    found = errors(make_rule(trigger, run_as=None))
    assert [path for path, _ in found] == ["run_as"]
    assert "is required" in found[0][1]


@pytest.mark.parametrize("trigger", ["manual", "deposit.created", "customer.beforeCreate", "email.received"])
def test_run_as_is_optional_elsewhere_and_checked_when_given(trigger):
    assert clean(make_rule(trigger))
    assert clean(make_rule(trigger, run_as=5))
    assert error_paths(make_rule(trigger, run_as="5")) == ["run_as"]


@pytest.mark.parametrize("run_as", [0, -1, "1", 1.0, True, [1]])
def test_run_as_is_a_positive_manager_id(run_as):
    assert error_paths(make_rule("interval", run_as=run_as)) == ["run_as"]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_may_be_an_exec_role(role):
    assert clean(make_rule("manual", exec_roles=[role]))


def test_unknown_exec_roles_are_errors_with_their_index():
    rule = make_rule("manual", exec_roles=["SESSION_MANAGER", "ROOT", "session_dealer"])
    assert error_paths(rule) == ["exec_roles[1]", "exec_roles[2]"]


@pytest.mark.parametrize("roles", ["SESSION_MANAGER", {"SESSION_MANAGER": 1}, 5])
def test_exec_roles_must_be_a_list(roles):
    assert error_paths(make_rule("manual", exec_roles=roles)) == ["exec_roles"]


def test_exec_roles_outside_manual_rules_are_warned():
    result = validate_rule(make_rule("deposit.created", exec_roles=["SESSION_MANAGER"]))
    assert result.valid
    assert [p.path for p in result.warnings] == ["exec_roles"]


# ---------------------------------------------------------------- all at once, and check_rule

def _broken_rule():
    return {"name": "", "brand": "acme", "trigger": "interval", "priority": "high",
            "conditions": [{"field": "trade.login", "op": "matches", "value": "("},
                           {"field": "nope", "op": "==", "value": 1}],
            "actions": [{"type": "webhook.send", "params": {"url": "ftp://x", "timeout_ms": 10}},
                        {"type": "record.set", "params": {"field": "x", "value": 1}}],
            "schedule": {"cron": "* *"}, "exec_roles": ["X"]}


def test_every_problem_is_reported_at_once():
    result = validate_rule(_broken_rule())
    assert [p.path for p in result.errors] == [
        "name", "priority", "conditions[0].field", "conditions[0].op", "conditions[1].field",
        "actions[0].params.url", "actions[1].type", "schedule.cron", "run_as", "exec_roles[0]",
    ]
    assert [p.path for p in result.warnings] == ["actions[0].params.timeout_ms", "exec_roles"]


def test_check_rule_returns_the_normalized_rule():
    rule = make_rule(junk=1)
    assert check_rule(rule) == normalize_rule(rule)
    assert check_rule(rule)["status"] == "active"


def test_check_rule_raises_with_every_error_as_details():
    with pytest.raises(ValidationFailed) as caught:
        check_rule(_broken_rule())
    failure = caught.value
    assert failure.code == "VALIDATION_FAILED"
    assert failure.text.startswith("rule is invalid: 10 problems: name: ")
    assert [d["path"] for d in failure.details][:2] == ["name", "priority"]
    assert all(set(d) == {"path", "message"} for d in failure.details)


def test_check_rule_counts_a_single_problem():
    with pytest.raises(ValidationFailed) as caught:
        check_rule(make_rule(brand=""))
    assert caught.value.text == "rule is invalid: 1 problem: brand: is required: a non-empty string"


def test_check_rule_refuses_a_non_map():
    with pytest.raises(ValidationFailed) as caught:
        check_rule("rule")
    assert caught.value.details == [{"path": "rule", "message": "must be a map"}]


@pytest.mark.parametrize(("topic", "ok"), [("kyc.step.push", True), ("trade.push", True),
                                           ("customer.push", False), ("nope", False)])
def test_event_emit_feeds_only_event_topics(topic, ok):
    rule = act("event.emit", {"topic": topic, "record": {"customer_id": 1}}, "sink.request")
    assert clean(rule) is ok or error_paths(rule) == ["actions[0].params.topic"]


def test_scheduled_rules_may_sweep_customers():
    rule = make_rule("interval", conditions=[{"field": "customer.kyc_status", "op": "==", "value": "pending"}])
    assert clean(rule)
