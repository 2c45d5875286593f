"""Before-hooks and manual execution: parameters, RBAC, brand scope, the handlers' replies."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from brokerflow.errors import Rejected
from tests.api.conftest import ROLES, manual_rule


@pytest.fixture
def hooks(api):
    calls = []

    def before(resource, operation, record, principal):
        calls.append((resource, operation, record, principal.role))
        if record.get("email") == "spam@example.com":
            raise Rejected("spam addresses are refused")
        return {"record": {**record, "risk_level": "low"}, "changed": True}

    def execute(rule, input, principal):
        calls.append((rule["id"], input, principal.role))
        fut: Future = Future()
        fut.set_result({"run": {"rule_id": rule["id"], "status": "success"}, "trace": []})
        return fut

    api.services.before_handler = before
    api.services.exec_handler = execute
    api.calls = calls
    return api


def test_before_returns_the_handlers_record(hooks):
    body = hooks.body("Before", {"resource": "customer", "operation": "create",
                                 "record": {"id": 9, "brand": "alpha"}})
    assert body == {"record": {"id": 9, "brand": "alpha", "risk_level": "low"}, "changed": True}
    assert hooks.calls == [("customer", "create", {"id": 9, "brand": "alpha"}, "SESSION_ADMIN")]


def test_before_rejected_is_the_rejected_error(hooks):
    error = hooks.error("Before", {"resource": "customer", "operation": "update",
                                   "record": {"id": 9, "email": "spam@example.com"}})
    assert error["code"] == "REJECTED"
    assert error["text"] == "spam addresses are refused"


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"operation": "create", "record": {}}, "resource"),
        ({"resource": "trade", "operation": "create", "record": {}}, "resource"),
        ({"resource": "customer", "operation": "delete", "record": {}}, "operation"),
        ({"resource": "customer", "operation": "create"}, "record"),
        ({"resource": "customer", "operation": "create", "record": "x"}, "record"),
    ],
)
def test_before_params_are_checked(hooks, params, path):
    error = hooks.error("Before", params)
    assert (error["code"], error["details"][0]["path"]) == ("VALIDATION_FAILED", path)
    assert hooks.calls == []


def test_exec_runs_a_manual_rule_for_an_admin(hooks):
    rule = hooks.body("MngAddWorkflowRule", {"rule": manual_rule()})["rule"]
    body = hooks.body("MngExecWorkflowRule", {"id": rule["id"], "input": {"customer_id": 5}})
    assert body == {"run": {"rule_id": rule["id"], "status": "success"}, "trace": []}
    assert hooks.calls == [(rule["id"], {"customer_id": 5}, "SESSION_ADMIN")]


@pytest.mark.parametrize("role", ROLES)
def test_exec_rbac_is_admin_or_a_role_in_exec_roles(hooks, role):
    open_to_dealers = hooks.body("MngAddWorkflowRule", {"rule": manual_rule(exec_roles=["SESSION_DEALER"])})["rule"]
    admins_only = hooks.body("MngAddWorkflowRule", {"rule": manual_rule()})["rule"]
    token = hooks.tokens[role]
    for rule, allowed in ((open_to_dealers, role in ("SESSION_ADMIN", "SESSION_DEALER")),
                          (admins_only, role == "SESSION_ADMIN")):
        reply = hooks.call("MngExecWorkflowRule", {"id": rule["id"], "input": {}}, token=token)
        if allowed:
            assert reply["success"] is True, reply
        else:
            assert reply["error"]["code"] == "ACCESS_DENIED"
            assert "exec_roles" in reply["error"]["text"]


def test_exec_of_an_unknown_rule_is_not_found(hooks):
    assert hooks.error("MngExecWorkflowRule", {"id": 999})["code"] == "NOT_FOUND"
    assert hooks.calls == []


def test_without_handlers_the_modes_are_internal_with_a_clear_text(api):
    rule = api.body("MngAddWorkflowRule", {"rule": manual_rule()})["rule"]
    error = api.error("MngExecWorkflowRule", {"id": rule["id"]})
    assert error["code"] == "INTERNAL"
    assert error["text"] == "not available in this process: manual rule execution"
    error = api.error("Before", {"resource": "customer", "operation": "create", "record": {"id": 1}})
    assert error["code"] == "INTERNAL"
    assert error["text"] == "not available in this process: before-hooks"
