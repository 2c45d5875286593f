"""Rule commands over the real socket against a real SQLite store."""

from __future__ import annotations

import pytest

from tests.api.conftest import deposit_rule


def test_validate_reports_every_error_with_its_path(api):
    body = api.body("MngValidateWorkflowRule", {"rule": {"name": "x", "brand": "alpha", "trigger": "nope"}})
    assert body["valid"] is False
    assert {"trigger"} <= {e["path"] for e in body["errors"]}
    assert api.body("MngValidateWorkflowRule", {"rule": deposit_rule()}) == {
        "valid": True, "errors": [], "warnings": []}


def test_validate_without_a_rule_is_validation_failed(api):
    error = api.error("MngValidateWorkflowRule", {})
    assert error["code"] == "VALIDATION_FAILED"
    assert error["details"] == [{"path": "rule", "message": "is required"}]


def test_add_sets_id_version_status_and_iso_times(api):
    rule = api.body("MngAddWorkflowRule", {"rule": deposit_rule()})["rule"]
    assert isinstance(rule["id"], int)
    assert rule["version"] == 1
    assert rule["status"] == "active"
    assert rule["priority"] == 100
    assert rule["created_at"] == "2026-11-23T12:00:00.000Z"
    assert rule["conditions"] == deposit_rule()["conditions"]
    assert api.body("MngGetWorkflowRule", {"id": rule["id"]})["rule"] == rule


def test_add_an_invalid_rule_is_validation_failed_with_details_and_stores_nothing(api):
    error = api.error("MngAddWorkflowRule", {"rule": deposit_rule(brand="", trigger="nope")})
    assert error["code"] == "VALIDATION_FAILED"
    assert {"brand", "trigger"} <= {d["path"] for d in error["details"]}
    assert all(set(d) == {"path", "message"} for d in error["details"])
    assert "brand" in error["text"]
    assert api.body("MngGetWorkflowRules")["rules"] == []


def test_add_returns_validation_warnings_as_messages(api):
    reply = api.call("MngAddWorkflowRule", {"rule": deposit_rule(actions=[])})
    assert reply["success"] is True
    assert any(m["type"] == "WARNING" and "actions" in m["text"] for m in reply["messages"])


def test_rule_changes_tell_the_listeners(api):
    calls = []
    api.services.rules_listeners.append(lambda: calls.append(1))
    rule = api.body("MngAddWorkflowRule", {"rule": deposit_rule()})["rule"]
    api.body("MngUpdateWorkflowRule", {"id": rule["id"], "version": 1, "rule": {"priority": 5}})
    api.body("MngArchiveWorkflowRule", {"id": rule["id"]})
    api.body("MngDeleteWorkflowRule", {"id": rule["id"]})
    assert len(calls) == 4


def test_update_bumps_the_version_and_a_stale_version_is_conflict(api):
    rule = api.body("MngAddWorkflowRule", {"rule": deposit_rule()})["rule"]
    updated = api.body("MngUpdateWorkflowRule",
                       {"id": rule["id"], "version": 1, "rule": deposit_rule(name="renamed")})["rule"]
    assert updated["version"] == 2
    assert updated["name"] == "renamed"
    error = api.error("MngUpdateWorkflowRule", {"id": rule["id"], "version": 1, "rule": deposit_rule()})
    assert error["code"] == "CONFLICT"
    assert "stale" in error["text"]


def test_update_with_a_partial_rule_keeps_the_other_fields_and_validates_the_result(api):
    rule = api.body("MngAddWorkflowRule", {"rule": deposit_rule()})["rule"]
    updated = api.body("MngUpdateWorkflowRule", {"id": rule["id"], "version": 1, "rule": {"priority": 7}})["rule"]
    assert updated["priority"] == 7
    assert updated["conditions"] == rule["conditions"]
    error = api.error("MngUpdateWorkflowRule", {"id": rule["id"], "version": 2, "rule": {"status": "maybe"}})
    assert error["code"] == "VALIDATION_FAILED"
    assert error["details"][0]["path"] == "status"


def test_update_needs_id_version_and_rule(api):
    error = api.error("MngUpdateWorkflowRule", {"id": "1", "rule": {}})
    assert error["code"] == "VALIDATION_FAILED"
    assert error["details"] == [{"path": "id", "message": "must be an integer, got str"}]
    error = api.error("MngUpdateWorkflowRule", {"id": 1, "rule": {}})
    assert error["details"] == [{"path": "version", "message": "is required"}]


def test_archive_sets_status_archived(api):
    rule = api.body("MngAddWorkflowRule", {"rule": deposit_rule()})["rule"]
    archived = api.body("MngArchiveWorkflowRule", {"id": rule["id"]})["rule"]
    assert archived["status"] == "archived"
    assert archived["version"] == 2


def test_delete_removes_and_then_the_rule_is_not_found(api):
    rule = api.body("MngAddWorkflowRule", {"rule": deposit_rule()})["rule"]
    assert api.body("MngDeleteWorkflowRule", {"id": rule["id"]}) == {}
    for cmd in ("MngGetWorkflowRule", "MngDeleteWorkflowRule", "MngArchiveWorkflowRule"):
        assert api.error(cmd, {"id": rule["id"]})["code"] == "NOT_FOUND"
    error = api.error("MngUpdateWorkflowRule", {"id": rule["id"], "version": 1, "rule": deposit_rule()})
    assert error["code"] == "NOT_FOUND"


def test_list_filters_by_brand_trigger_and_status(api):
    a = api.body("MngAddWorkflowRule", {"rule": deposit_rule("alpha")})["rule"]
    b = api.body("MngAddWorkflowRule", {"rule": deposit_rule("beta", trigger="withdrawal.created")})["rule"]
    api.body("MngArchiveWorkflowRule", {"id": b["id"]})

    def ids(**params):
        return [r["id"] for r in api.body("MngGetWorkflowRules", params)["rules"]]

    assert ids() == [a["id"], b["id"]]
    assert ids(brand="alpha") == [a["id"]]
    assert ids(trigger="withdrawal.created") == [b["id"]]
    assert ids(status="active") == [a["id"]]
    assert ids(brand="alpha", status="archived") == []


def test_list_refuses_an_unknown_filter(api):
    error = api.error("MngGetWorkflowRules", {"brnad": "alpha"})
    assert error["code"] == "VALIDATION_FAILED"
    assert error["details"][0]["path"] == "brnad"


def test_json_clients_get_the_same_rule_commands(api):
    reply = api.call("MngAddWorkflowRule", {"rule": deposit_rule()}, as_json=True)
    assert reply["success"] is True
    assert reply["body"]["rule"]["version"] == 1


DEPOSIT_EVENT = {"topic": "trade.push", "payload": {"event": "EV_RECORD_ADD", "record": {
    "order": 1, "login": 1001, "cmd": "OP_BALANCE_IN", "profit": 2000.0}}}


def _reference(api):
    api.body("MngUpsertGroup", {"record": {"group": "real\\alpha", "brand": "alpha", "currency": "USD"}})
    api.body("MngUpsertAccount", {"record": {"login": 1001, "group": "real\\alpha"}})


def test_dry_run_of_a_stored_rule_explains_the_match_and_changes_nothing(api):
    _reference(api)
    rule = api.body("MngAddWorkflowRule", {"rule": deposit_rule()})["rule"]
    body = api.body("MngTestWorkflowRule", {"id": rule["id"], "event": DEPOSIT_EVENT})
    assert body["matched"] is True
    assert body["brand"] == "alpha"
    assert body["conditions"] == [{"field": "amount_usd", "op": ">=", "value": 1000, "actual": 2000.0,
                                   "result": True}]
    assert body["actions"][0]["params"]["message"] == "deposit by 1001"
    assert api.body("MngGetWorkflowRunLog")["runs"] == []
    assert api.body("MngGetWorkflowRule", {"id": rule["id"]})["rule"] == rule


def test_dry_run_of_an_inline_rule_says_why_it_does_not_match(api):
    _reference(api)
    small = {**DEPOSIT_EVENT, "payload": {**DEPOSIT_EVENT["payload"], "record": {
        **DEPOSIT_EVENT["payload"]["record"], "profit": 10.0}}}
    body = api.body("MngTestWorkflowRule", {"rule": deposit_rule(), "event": small})
    assert body["matched"] is False
    assert body["conditions"][0]["result"] is False
    assert body["actions"] == []
    body = api.body("MngTestWorkflowRule", {"rule": deposit_rule(trigger="trade.opened"), "event": small})
    assert "trigger mismatch" in body["reason"]


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"event": DEPOSIT_EVENT}, "rule"),
        ({"rule": deposit_rule()}, "event"),
        ({"rule": deposit_rule(), "event": {"payload": {}}}, "event.topic"),
        ({"rule": deposit_rule(), "event": {"topic": "trade.push"}}, "event.payload"),
        ({"rule": deposit_rule(), "event": {"topic": "nope.push", "payload": {}}}, "event"),
        ({"rule": deposit_rule(), "event": {"topic": "trade.push", "payload": {
            "event": "EV_RECORD_ADD", "record": {"order": 1, "login": "1001", "cmd": "OP_BUY"}}}}, "event"),
    ],
)
def test_dry_run_refuses_what_it_cannot_test_with_the_reason(api, params, path):
    error = api.error("MngTestWorkflowRule", params)
    assert error["code"] == "VALIDATION_FAILED"
    assert error["details"][0]["path"] == path


def test_dry_run_names_the_malformed_field_of_the_event(api):
    bad = {"topic": "trade.push", "payload": {"event": "EV_RECORD_ADD", "record": {
        "order": 1, "login": "1001", "cmd": "OP_BUY"}}}
    error = api.error("MngTestWorkflowRule", {"rule": deposit_rule(), "event": bad})
    assert "record.login" in error["text"]


def test_dry_run_of_an_invalid_inline_rule_is_validation_failed(api):
    error = api.error("MngTestWorkflowRule", {"rule": deposit_rule(trigger="nope"), "event": DEPOSIT_EVENT})
    assert (error["code"], error["details"][0]["path"]) == ("VALIDATION_FAILED", "trigger")
