"""Rules: the stored shape, optimistic versions, archive/delete, and listing filters."""

from __future__ import annotations

import pytest

from brokerflow.errors import Conflict, NotFound
from tests.storage.conftest import T0_MS, run_threads

RULE_KEYS = {
    "id", "name", "brand", "trigger", "status", "priority", "conditions", "actions", "version",
    "schedule", "run_as", "exec_roles", "cooldown", "created_at", "updated_at", "created_by", "updated_by",
}


def deposit_rule(**changes) -> dict:
    rule = {
        "name": "KYC after first deposit",
        "brand": "alpha",
        "trigger": "deposit.created",
        "conditions": [{"field": "amount_usd", "op": ">=", "value": 1}],
        "actions": [{"type": "kyc.set_required_level", "params": {"level": 1}}],
    }
    rule.update(changes)
    return rule


def test_add_assigns_id_and_version_and_fills_defaults(store):
    rule = store.rules.add(deposit_rule(), by="admin")
    assert set(rule) == RULE_KEYS
    assert rule["id"] >= 1 and rule["version"] == 1
    assert (rule["status"], rule["priority"]) == ("active", 100)
    assert rule["conditions"] == [{"field": "amount_usd", "op": ">=", "value": 1}]
    assert rule["created_by"] == rule["updated_by"] == "admin"
    assert rule["created_at"] == rule["updated_at"] > T0_MS
    assert store.rules.get(rule["id"]) == rule


def test_add_ignores_a_callers_id_and_version(store):
    rule = store.rules.add(deposit_rule(id=999, version=7))
    assert rule["id"] != 999 and rule["version"] == 1


def test_deferred_rule_fields_round_trip(store):
    rule = store.rules.add(deposit_rule(
        trigger="interval", schedule={"cron": "*/5 * * * *"}, run_as=12, exec_roles=["SESSION_MANAGER"],
    ))
    assert store.rules.get(rule["id"])["schedule"] == {"cron": "*/5 * * * *"}
    assert (rule["run_as"], rule["exec_roles"]) == (12, ["SESSION_MANAGER"])


def test_update_replaces_given_fields_and_increments_the_version(store):
    rule = store.rules.add(deposit_rule(), by="admin")
    updated = store.rules.update(rule["id"], 1, {"priority": 5, "status": "disabled"}, by="ops")
    assert updated["version"] == 2
    assert (updated["priority"], updated["status"]) == (5, "disabled")
    assert updated["conditions"] == rule["conditions"]  # not given: kept
    assert (updated["created_by"], updated["updated_by"]) == ("admin", "ops")
    assert updated["updated_at"] > rule["updated_at"] and updated["created_at"] == rule["created_at"]


def test_update_with_a_stale_version_is_a_conflict(store):
    rule = store.rules.add(deposit_rule())
    store.rules.update(rule["id"], 1, {"name": "first"})
    with pytest.raises(Conflict) as info:
        store.rules.update(rule["id"], 1, {"name": "second"})
    assert info.value.details[0]["path"] == "version"
    assert store.rules.get(rule["id"])["name"] == "first"


def test_concurrent_updates_of_one_version_let_exactly_one_win(store):
    rule = store.rules.add(deposit_rule())

    def work(index: int):
        return store.rules.update(rule["id"], 1, {"name": f"writer {index}"})

    results = run_threads(4, work, store)
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, dict))
    assert store.rules.get(rule["id"])["version"] == 2


@pytest.mark.parametrize("rule_id", [12345, "1", None, True])
def test_missing_rules_are_not_found(store, rule_id):
    store.rules.add(deposit_rule())
    for call in (
        lambda: store.rules.get(rule_id),
        lambda: store.rules.update(rule_id, 1, {"name": "x"}),
        lambda: store.rules.archive(rule_id),
        lambda: store.rules.delete(rule_id),
    ):
        with pytest.raises(NotFound):
            call()


def test_archive_sets_status_archived_and_increments_the_version(store):
    rule = store.rules.add(deposit_rule())
    archived = store.rules.archive(rule["id"], by="admin")
    assert (archived["status"], archived["version"], archived["updated_by"]) == ("archived", 2, "admin")


def test_delete_removes_the_rule(store):
    rule = store.rules.add(deposit_rule())
    store.rules.delete(rule["id"])
    with pytest.raises(NotFound):
        store.rules.get(rule["id"])
    assert store.rules.list() == []


def test_list_filters_by_brand_trigger_status_and_allowed_brands(store):
    a = store.rules.add(deposit_rule(brand="alpha"))
    b = store.rules.add(deposit_rule(brand="beta", trigger="trade.opened"))
    c = store.rules.add(deposit_rule(brand="gamma", status="disabled"))
    ids = lambda rules: [rule["id"] for rule in rules]  # noqa: E731
    assert ids(store.rules.list()) == [a["id"], b["id"], c["id"]]
    assert ids(store.rules.list(brand="beta")) == [b["id"]]
    assert ids(store.rules.list(trigger="deposit.created")) == [a["id"], c["id"]]
    assert ids(store.rules.list(status="active")) == [a["id"], b["id"]]
    assert ids(store.rules.list(brands={"alpha", "gamma"})) == [a["id"], c["id"]]
    assert ids(store.rules.list(brands=set())) == []
    assert ids(store.rules.list(brand="alpha", brands={"beta"})) == []
