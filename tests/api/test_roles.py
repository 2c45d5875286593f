"""The access model, table-driven: every command, each of the five roles, and no/unknown tokens."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from brokerflow.api.commands import COMMANDS
from tests.api.conftest import ROLES, deposit_rule, manual_rule
from tests.api.test_flows import ONBOARDING
from tests.api.test_reference import RECORDS

ADMIN_ONLY = {
    "MngAddWorkflowRule", "MngUpdateWorkflowRule", "MngArchiveWorkflowRule", "MngDeleteWorkflowRule",
    *(f"MngUpsert{kind}" for kind in RECORDS), "MngAddFlow", "MngUpdateFlow", "MngDeleteFlow",
    "Before",  # it runs the rules' actions: the role that executing actions needs
    "MngRetryDeadLetter", "MngDiscardDeadLetter",
}
READ = {
    "MngGetWorkflowDefinitions", "MngValidateWorkflowRule", "MngGetWorkflowRule", "MngGetWorkflowRules",
    "MngTestWorkflowRule", "MngBacktestWorkflowRule", "MngGetWorkflowRunLog", "MngGetStats",
    *(f"MngGet{kind}s" for kind in RECORDS), "MngGetKycProfile", "MngGetFlows", "MngExecWorkflowRule",
    "MngGetDeadLetters",
    "MngGetProcesses",  # the console's process list (any valid token, brand-scoped like the machine)
}
MACHINE = {"START", "RESTORE", "EVENT", "ROLLBACK", "EXIT", "ABORT", "HISTORY", "AVAILABLE_EVENTS"}
DEPOSIT = {"topic": "trade.push", "payload": {"event": "EV_RECORD_ADD", "record": {
    "order": 1, "login": 1001, "cmd": "OP_BALANCE_IN", "profit": 2000.0}}}


def test_the_registry_holds_exactly_the_protocol_commands():
    assert set(COMMANDS) == {"Ping"} | ADMIN_ONLY | READ | MACHINE


@pytest.fixture
def world(api):
    """One of everything, so each command has something real to act on."""
    def done(body):
        fut: Future = Future()
        fut.set_result(body)
        return fut

    services = api.services
    services.process_handler = lambda cmd, params, principal: done({"result": "SUCCESS", "pid": "p1"})
    services.exec_handler = lambda rule, input, principal: done({"run": {"rule_id": rule["id"]}, "trace": []})
    services.before_handler = lambda resource, operation, record, principal: {"record": record, "changed": False}
    services.dead_letter_handler = lambda dead: done((dead, "success"))
    retried, discarded = (services.store.webhooks.bury(None, {
        "run_id": run_id, "action_index": 0, "rule_id": 1, "brand": "alpha", "url": "https://hooks.example/x",
        "delivery": {}, "attempts": [], "last_error": "HTTP 503"}) for run_id in (1, 2))
    rule, doomed, archived = (api.body("MngAddWorkflowRule", {"rule": deposit_rule()})["rule"] for _ in range(3))
    manual = api.body("MngAddWorkflowRule", {"rule": manual_rule(exec_roles=ROLES)})["rule"]
    api.body("MngAddFlow", {"flow": ONBOARDING})
    api.body("MngAddFlow", {"flow": {**ONBOARDING, "name": "doomed"}})
    services.store.kyc.save_profile({"customer_id": 501, "brand": "alpha", "steps": []})
    params = {
        "MngValidateWorkflowRule": {"rule": deposit_rule()},
        "MngAddWorkflowRule": {"rule": deposit_rule()},
        "MngUpdateWorkflowRule": {"id": rule["id"], "version": 1, "rule": {"priority": 3}},
        "MngArchiveWorkflowRule": {"id": archived["id"]},
        "MngDeleteWorkflowRule": {"id": doomed["id"]},
        "MngGetWorkflowRule": {"id": rule["id"]},
        "MngTestWorkflowRule": {"id": rule["id"], "event": DEPOSIT},
        "MngBacktestWorkflowRule": {"rule": deposit_rule()},
        "MngGetKycProfile": {"customer_id": 501},
        "MngAddFlow": {"flow": {**ONBOARDING, "name": "another"}},
        "MngUpdateFlow": {"flow": ONBOARDING},
        "MngDeleteFlow": {"name": "doomed"},
        "Before": {"resource": "customer", "operation": "create", "record": {"id": 1, "brand": "alpha"}},
        "MngExecWorkflowRule": {"id": manual["id"], "input": {}},
        "MngRetryDeadLetter": {"id": retried},
        "MngDiscardDeadLetter": {"id": discarded},
        **{f"MngUpsert{kind}": {"record": record} for kind, record in RECORDS.items()},
        **{cmd: {"name": "onboarding", "pid": "p1"} for cmd in MACHINE},
    }
    return api, params


@pytest.mark.parametrize("role", ROLES)
def test_each_role_runs_what_it_may_and_is_denied_the_rest(world, role):
    api, params = world
    token = api.tokens[role]
    for cmd in sorted(ADMIN_ONLY | READ | MACHINE):
        reply = api.call(cmd, params.get(cmd, {}), token=token)
        if role != "SESSION_ADMIN" and cmd in ADMIN_ONLY:
            assert reply["success"] is False and reply["error"]["code"] == "ACCESS_DENIED", (cmd, reply)
        else:
            assert reply["success"] is True, (cmd, reply)


@pytest.mark.parametrize("role", [r for r in ROLES if r != "SESSION_ADMIN"])
def test_a_denied_write_changes_nothing(world, role):
    api, params = world
    before = api.body("MngGetWorkflowRules")
    for cmd in ("MngAddWorkflowRule", "MngUpdateWorkflowRule", "MngArchiveWorkflowRule", "MngDeleteWorkflowRule"):
        api.error(cmd, params[cmd], token=api.tokens[role])
    assert api.body("MngGetWorkflowRules") == before


@pytest.mark.parametrize("token", [None, "", "bf_unknown", "x" * 500])
def test_every_command_but_ping_needs_a_known_token(world, token):
    api, params = world
    for cmd in sorted(ADMIN_ONLY | READ | MACHINE):
        error = api.error(cmd, params.get(cmd, {}), token=token)
        assert error["code"] == "UNAUTHENTICATED", (cmd, error)
    assert api.body("Ping", token=token)["pong"] is True


def test_a_revoked_token_is_unauthenticated(api):
    plain, record = api.services.store.tokens.create("SESSION_ADMIN")
    assert api.call("MngGetStats", token=plain)["success"] is True
    api.services.store.tokens.revoke(record["id"])
    assert api.error("MngGetStats", token=plain)["code"] == "UNAUTHENTICATED"


def test_an_unknown_command_is_unknown_command_with_or_without_a_token(api):
    assert api.error("MngDropDatabase")["code"] == "UNKNOWN_COMMAND"
    assert api.error("MngDropDatabase", token=None)["code"] == "UNKNOWN_COMMAND"


@pytest.mark.parametrize("role", [r for r in ROLES if r != "SESSION_ADMIN"])
def test_a_read_only_role_never_reaches_the_before_hooks(world, role):
    """Before runs the matching rules' actions for real; a read-only role must not set them off."""
    api, params = world
    asked = []
    api.services.before_handler = lambda *args: asked.append(args) or {"record": {}, "changed": False}
    assert api.error("Before", params["Before"], token=api.tokens[role])["code"] == "ACCESS_DENIED"
    assert asked == []
    assert api.body("Before", params["Before"]) == {"record": {}, "changed": False}
    assert len(asked) == 1
