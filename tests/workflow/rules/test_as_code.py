"""Rules as code, pure: the exported document, reading one back, and the plan that applies it."""

from __future__ import annotations

import pytest

from brokerflow.workflow.rules.as_code import (
    RulesFileError,
    canonical,
    export_document,
    make_plan,
    rules_of_document,
    update_body,
)

STORED = [
    {"id": 1, "version": 3, "name": "big", "brand": "alpha", "trigger": "deposit.created", "status": "active",
     "priority": 100, "conditions": [{"field": "amount_usd", "op": ">", "value": 5000}],
     "actions": [{"type": "notify.manager", "params": {"message": "big"}}], "exec_roles": [], "run_as": None,
     "schedule": None, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z"},
    {"id": 2, "version": 1, "name": "big", "brand": "beta", "trigger": "deposit.created", "status": "disabled",
     "priority": 5, "conditions": [], "actions": [{"type": "notify.manager", "params": {"message": "b"}}]},
    {"id": 3, "version": 1, "name": "old", "brand": "alpha", "trigger": "deposit.created", "status": "archived",
     "priority": 100, "conditions": [], "actions": []},
]


def test_canonical_drops_ids_versions_timestamps_defaults_and_empties():
    assert canonical(STORED[0]) == {"brand": "alpha", "trigger": "deposit.created",
                                    "conditions": STORED[0]["conditions"], "actions": STORED[0]["actions"],
                                    "name": "big"}


def test_the_export_is_keyed_by_name_and_a_shared_name_by_brand_too():
    doc = export_document(STORED)
    assert list(doc) == ["alpha/big", "beta/big"]  # the archived rule is history, not code
    assert doc["beta/big"] == {"name": "big", "brand": "beta", "trigger": "deposit.created", "status": "disabled",
                               "priority": 5, "actions": STORED[1]["actions"]}
    assert export_document(STORED[:1]) == {"big": {k: v for k, v in canonical(STORED[0]).items() if k != "name"}}


def test_an_exported_document_read_back_plans_no_change():
    rules = rules_of_document(export_document(STORED), "rules.yaml")
    plan = make_plan(rules, STORED, prune=True)
    assert plan.changes == 0 and plan.summary()["unchanged"] == ["alpha/big", "beta/big"]


def test_the_plan_creates_updates_and_with_prune_archives_only_the_documents_brands():
    stored = [*STORED, {"id": 4, "version": 1, "name": "gone", "brand": "alpha", "trigger": "deposit.created",
                        "status": "active", "actions": []}]
    wanted = [{**canonical(STORED[0]), "priority": 10}, {"name": "new", "brand": "alpha", "trigger": "deposit.created"}]
    plan = make_plan(wanted, stored, prune=True)
    assert plan.summary() == {"create": ["alpha/new"], "update": ["alpha/big"], "archive": ["alpha/gone"],
                              "unchanged": []}
    assert plan.update[0][0]["id"] == 1
    assert make_plan(wanted, stored).archive == []


@pytest.mark.parametrize(("doc", "problem"), [
    ([{"name": "a", "brand": "x"}, {"name": "a", "brand": "x"}], "rule [1]: duplicate (brand, name) ('x', 'a')"),
    ({"a": {"brand": "x", "id": 4, "version": 2}}, "rule a: id, version: ids, versions and timestamps"),
    ({"a": "not a rule"}, "rule a: must be a map, got str"),
    ("text", "the document must be a map of rules by name"),
])
def test_a_bad_document_names_the_file_and_the_rule(doc, problem):
    with pytest.raises(RulesFileError) as caught:
        rules_of_document(doc, "rules/prod.yaml")
    assert str(caught.value).startswith("rules/prod.yaml: " + problem)


def test_an_update_sends_the_fields_the_file_dropped_as_their_defaults():
    wanted = {"name": "big", "brand": "alpha", "trigger": "deposit.created", "actions": STORED[0]["actions"]}
    assert update_body(STORED[1], wanted) == {**wanted, "status": "active", "priority": 100}
    assert update_body(STORED[0], wanted) == {**wanted, "conditions": []}


def test_a_list_of_rules_and_a_rules_wrapper_read_the_same():
    rule = {"name": "a", "brand": "x", "trigger": "deposit.created"}
    keyed = {"a": {"brand": "x", "trigger": "deposit.created"}}
    assert rules_of_document([rule], "f") == rules_of_document({"rules": [rule]}, "f") == [rule]
    assert rules_of_document({"rules": keyed}, "f") == rules_of_document(keyed, "f") == [rule]
    assert rules_of_document({"rules": {"brand": "x", "trigger": "t"}}, "f")[0]["name"] == "rules"
