"""The catalog: the seed's triggers, fields, operators and actions, and the definitions body."""

from __future__ import annotations

import json

import msgpack
import pytest

from brokerflow.workflow import catalog
from brokerflow.workflow.catalog import (
    ACTIONS,
    ALL_TRIGGERS,
    EVENT_TRIGGERS,
    FIELDS,
    OPERATORS,
    definitions,
    field_spec,
)

SEED_EVENT_TRIGGERS = {
    "trade.opened", "trade.closed", "deposit.created", "withdrawal.created",
    "account:added", "account:updated", "account:deleted",
    "customer.created", "customer.updated", "kyc.step.approved", "kyc.step.rejected",
}
MODE_TRIGGERS = {
    "customer.beforeCreate", "customer.beforeUpdate", "account.beforeCreate", "account.beforeUpdate",
    "manual", "interval", "timestamp", "sink.request", "email.received", "email.sent",
}
TRADE = {"trade.opened", "trade.closed", "deposit.created", "withdrawal.created"}
ACCOUNT = {"account:added", "account:updated", "account:deleted"}
ACCOUNT_SIDE = TRADE | ACCOUNT | {"account.beforeCreate", "account.beforeUpdate"}
CUSTOMER_SIDE = TRADE | ACCOUNT | {
    "customer.created", "customer.updated", "kyc.step.approved", "kyc.step.rejected",
    "customer.beforeCreate", "customer.beforeUpdate", "interval", "timestamp",
}

# The seed's condition list (plus the additions) with type and providing triggers.
FIELD_TABLE = [
    ("brand", "string", set(SEED_EVENT_TRIGGERS | MODE_TRIGGERS)),
    ("amount_usd", "number", TRADE),
    ("trade.order", "integer", TRADE),
    ("trade.login", "integer", TRADE),
    ("trade.cmd", "string", TRADE),
    ("trade.volume", "integer", TRADE),
    ("trade.close_price", "number", TRADE),
    ("trade.symbol", "string", TRADE),
    ("trade.comment", "string", TRADE),
    ("account.login", "integer", ACCOUNT_SIDE),
    ("account.group", "string", ACCOUNT_SIDE),
    ("account.name", "string", ACCOUNT_SIDE),
    ("account.email", "string", ACCOUNT_SIDE),
    ("account.country", "string", ACCOUNT_SIDE),
    ("account.enable", "boolean", ACCOUNT_SIDE),
    ("account.leverage", "integer", ACCOUNT_SIDE),
    ("customer.country", "string", CUSTOMER_SIDE),
    ("customer.language", "string", CUSTOMER_SIDE),
    ("customer.email", "string", CUSTOMER_SIDE),
    ("customer.kyc_status", "string", CUSTOMER_SIDE),
    ("customer.kyc_current_level", "integer", CUSTOMER_SIDE),
    ("customer.risk_level", "string", CUSTOMER_SIDE),
    ("customer.status", "string", CUSTOMER_SIDE),
    ("customer.brand", "string", CUSTOMER_SIDE),
    ("customer.id", "integer", CUSTOMER_SIDE),
    ("kyc.step_code", "string", {"kyc.step.approved", "kyc.step.rejected"}),
    ("kyc.level", "integer", {"kyc.step.approved", "kyc.step.rejected"}),
    ("kyc.status", "string", {"kyc.step.approved", "kyc.step.rejected"}),
    ("request.method", "string", {"sink.request"}),
    ("request.route", "string", {"sink.request"}),
    ("email.from", "string", {"email.received", "email.sent"}),
    ("email.to", "string", {"email.received", "email.sent"}),
    ("email.subject", "string", {"email.received", "email.sent"}),
    ("email.body", "string", {"email.received", "email.sent"}),
]
PREFIX_TABLE = [
    ("request.headers.x-token", "request.headers.*", {"sink.request"}),
    ("request.query.page", "request.query.*", {"sink.request"}),
    ("request.body.lead.email", "request.body.*", {"sink.request"}),
    ("input.amount", "input.*", {"manual"}),
]
ACTION_TABLE = [
    ("notify.manager", "notifier", [("manager_id", "integer", False), ("message", "string", True)]),
    ("customer.set_risk_level", "customer", [("risk_level", "string", True)]),
    ("customer.set_status", "customer", [("status", "string", True)]),
    ("kyc.require_step", "kyc", [("step_code", "string", True), ("level", "integer", False),
                                 ("reason", "string", False)]),
    ("kyc.set_required_level", "kyc", [("level", "integer", True), ("reason", "string", False)]),
    ("webhook.send", "webhook", [("url", "string", True), ("method", "string", False),
                                 ("headers", "map", False), ("body", "string", False),
                                 ("timeout_ms", "integer", False), ("retries", "integer", False),
                                 ("backoff_s", "number", False), ("secret", "string", False)]),
    ("email.send", "email", [("to", "string", True), ("subject", "string", True), ("body", "string", False)]),
    ("record.set", "inline", [("field", "string", True), ("value", "any", True)]),
    ("operation.reject", "inline", [("message", "string", True)]),
    ("sink.respond", "inline", [("status", "integer", False), ("headers", "map", False),
                                ("body", "string", False)]),
    ("event.emit", "inline", [("topic", "string", True), ("event", "string", False), ("record", "map", True)]),
]


def test_event_triggers_are_exactly_the_seed_mapping_targets():
    assert set(EVENT_TRIGGERS) == SEED_EVENT_TRIGGERS
    assert len(EVENT_TRIGGERS) == len(SEED_EVENT_TRIGGERS)


def test_all_triggers_add_exactly_the_automation_mode_triggers():
    assert set(ALL_TRIGGERS) == SEED_EVENT_TRIGGERS | MODE_TRIGGERS
    assert len(ALL_TRIGGERS) == len(set(ALL_TRIGGERS))


@pytest.mark.parametrize(("name", "kind", "triggers"), FIELD_TABLE)
def test_each_field_has_its_type_and_providing_triggers(name, kind, triggers):
    spec = FIELDS[name]
    assert (spec.name, spec.type, spec.prefix) == (name, kind, False)
    assert spec.triggers == frozenset(triggers)
    assert field_spec(name) is spec


@pytest.mark.parametrize(("name", "pattern", "triggers"), PREFIX_TABLE)
def test_prefix_fields_resolve_any_key_under_their_stem(name, pattern, triggers):
    spec = field_spec(name)
    assert spec is FIELDS[pattern]
    assert (spec.type, spec.prefix, spec.triggers) == ("any", True, frozenset(triggers))
    assert spec.stem == pattern[:-1]


def test_the_catalog_holds_no_field_beyond_the_tables():
    assert set(FIELDS) == {row[0] for row in FIELD_TABLE} | {row[1] for row in PREFIX_TABLE}


@pytest.mark.parametrize(
    "name", ["request.headers.", "input.", "input", "trade", "trade.profit", "", "x.y", None, 3]
)
def test_field_spec_is_none_for_names_outside_the_catalog(name):
    assert field_spec(name) is None


def test_every_field_trigger_is_a_known_trigger():
    for spec in FIELDS.values():
        assert spec.triggers <= set(ALL_TRIGGERS), spec.name


def test_operators_per_type():
    order = ("==", "!=", ">", ">=", "<", "<=")
    assert OPERATORS["number"] == order + ("in", "not_in")
    assert OPERATORS["integer"] == OPERATORS["number"]
    text_ops = ("contains", "starts_with", "ends_with", "matches")
    assert OPERATORS["string"] == ("==", "!=", "in", "not_in") + text_ops
    assert OPERATORS["boolean"] == ("==", "!=")
    assert OPERATORS["any"] == catalog.ALL_OPS
    assert set(catalog.ALL_OPS) == set(OPERATORS["number"]) | set(OPERATORS["string"])


@pytest.mark.parametrize(("kind", "executor", "params"), ACTION_TABLE)
def test_each_action_has_its_executor_and_params(kind, executor, params):
    spec = ACTIONS[kind]
    assert spec.executor == executor
    assert [(p.name, p.type, p.required) for p in spec.params] == params
    assert spec.param(params[0][0]) is spec.params[0]
    assert spec.param("nope") is None


def test_the_catalog_holds_no_action_beyond_the_table():
    assert set(ACTIONS) == {row[0] for row in ACTION_TABLE}
    assert {a.executor for a in ACTIONS.values()} <= set(catalog.EXECUTORS)


def test_inline_actions_are_bound_to_their_modes():
    hooks = {"customer.beforeCreate", "customer.beforeUpdate", "account.beforeCreate", "account.beforeUpdate"}
    assert ACTIONS["record.set"].triggers == hooks
    assert ACTIONS["operation.reject"].triggers == hooks
    assert ACTIONS["sink.respond"].triggers == {"sink.request"}
    assert ACTIONS["event.emit"].triggers == {"manual", "interval", "timestamp", "sink.request", "email.received"}


@pytest.mark.parametrize("kind", ["notify.manager", "webhook.send", "email.send"])
def test_outbound_actions_are_allowed_on_every_trigger(kind):
    assert ACTIONS[kind].triggers is None


@pytest.mark.parametrize(
    "kind", ["customer.set_risk_level", "customer.set_status", "kyc.require_step", "kyc.set_required_level"]
)
def test_customer_actions_need_a_trigger_that_can_link_an_existing_customer(kind):
    assert ACTIONS[kind].triggers == CUSTOMER_SIDE - {"customer.beforeCreate"}


def test_roles_are_the_seed_access_model():
    assert catalog.ROLES == (
        "SESSION_ADMIN", "SESSION_MANAGER", "SESSION_DEALER", "SESSION_CRM_MANAGER", "SESSION_CRM_ADMIN",
    )


def test_definitions_has_the_protocol_shape():
    body = definitions()
    assert set(body) == {"triggers", "conditions", "actions", "language"}
    assert body["triggers"] == sorted(SEED_EVENT_TRIGGERS | MODE_TRIGGERS)
    for cond in body["conditions"]:
        assert set(cond) == {"field", "type", "ops", "triggers"}
        assert cond["ops"] == list(OPERATORS[cond["type"]])
        assert cond["triggers"] == sorted(cond["triggers"])
    for action in body["actions"]:
        assert set(action) == {"type", "params"}
        for param in action["params"]:
            assert set(param) == {"name", "type", "required"}


def test_definitions_lists_are_sorted():
    body = definitions()
    fields = [c["field"] for c in body["conditions"]]
    types = [a["type"] for a in body["actions"]]
    assert fields == sorted(fields) == sorted(FIELDS)
    assert types == sorted(types) == sorted(ACTIONS)


def test_definitions_describe_the_seed_webhook_action():
    actions = {a["type"]: a for a in definitions()["actions"]}
    assert actions["webhook.send"]["params"][0] == {"name": "url", "type": "string", "required": True}


def test_definitions_survive_json_and_msgpack():
    body = definitions()
    assert json.loads(json.dumps(body)) == body
    assert msgpack.unpackb(msgpack.packb(body)) == body


def test_definitions_are_a_fresh_copy_each_time():
    first = definitions()
    first["triggers"].clear()
    assert definitions()["triggers"]
