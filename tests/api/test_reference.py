"""Reference data, KYC step templates and KYC profiles."""

from __future__ import annotations

import pytest

RECORDS = {
    "Group": {"group": "real\\alpha", "brand": "alpha", "currency": "EUR"},
    "Account": {"login": 1001, "group": "real\\alpha", "name": "Ann", "enable": True, "customer_id": 501},
    "Customer": {"id": 501, "brand": "alpha", "email": "ann@example.com", "kyc_current_level": 0},
    "Manager": {"id": 7, "name": "Max", "enabled": True, "brand": "alpha"},
    "Rate": {"currency": "EUR", "usd": 1.1},
    "KycStepTemplate": {"brand": "alpha", "step_code": "POI", "level": 1, "required": True,
                        "active": True, "title": "Proof of identity"},
}
KINDS = {"Group": "group", "Account": "account", "Customer": "customer", "Manager": "manager",
         "Rate": "rate", "KycStepTemplate": "kyc_step_template"}


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_upsert_then_get_returns_the_record_and_tells_the_listeners(api, kind):
    seen = []
    api.services.reference_listeners.append(lambda k, r: seen.append((k, r)))
    record = RECORDS[kind]
    assert api.body(f"MngUpsert{kind}", {"record": record}) == {"record": record}
    assert api.body(f"MngGet{kind}s") == {"records": [record]}
    assert seen == [(KINDS[kind], record)]


def test_upsert_merges_a_partial_record_and_the_replica_follows(api):
    api.body("MngUpsertCustomer", {"record": RECORDS["Customer"]})
    merged = api.body("MngUpsertCustomer", {"record": {"id": 501, "risk_level": "high"}})["record"]
    assert merged == {**RECORDS["Customer"], "risk_level": "high"}
    assert api.services.refs.customers[501]["risk_level"] == "high"


def test_get_filters_by_equality(api):
    api.body("MngUpsertAccount", {"record": RECORDS["Account"]})
    api.body("MngUpsertAccount", {"record": {"login": 1002, "group": "demo", "country": "DE"}})
    assert [r["login"] for r in api.body("MngGetAccounts", {"group": "demo"})["records"]] == [1002]
    assert [r["login"] for r in api.body("MngGetAccounts", {"country": "DE"})["records"]] == [1002]
    assert api.body("MngGetAccounts", {"login": 9})["records"] == []


@pytest.mark.parametrize(
    ("kind", "record", "paths"),
    [
        ("Account", {"login": "1001"}, ["record.login"]),
        ("Account", {"group": "g"}, ["record.login"]),
        ("Account", {"login": 1, "enable": "yes", "leverage": 1.5}, ["record.enable", "record.leverage"]),
        ("Customer", {"id": True}, ["record.id"]),
        ("Manager", {"id": 3, "enabled": 1}, ["record.enabled"]),
        ("Rate", {"currency": "EUR", "usd": "1.1"}, ["record.usd"]),
        ("Group", {"group": 5}, ["record.group"]),
        ("KycStepTemplate", {"brand": "alpha"}, ["record.step_code"]),
        ("KycStepTemplate", {"brand": "alpha", "step_code": "POI", "required": "y"}, ["record.required"]),
    ],
)
def test_record_types_are_checked_with_paths(api, kind, record, paths):
    error = api.error(f"MngUpsert{kind}", {"record": record})
    assert error["code"] == "VALIDATION_FAILED"
    assert [d["path"] for d in error["details"]] == paths


def test_upsert_needs_a_record_map(api):
    for params in ({}, {"record": [1]}):
        error = api.error("MngUpsertGroup", params)
        assert error["code"] == "VALIDATION_FAILED"
        assert error["details"][0]["path"] == "record"


def test_kyc_profile_is_returned_and_a_missing_one_is_not_found(api):
    profile = {"customer_id": 501, "brand": "alpha", "required_level": 1, "current_level": 0,
               "steps": [{"step_code": "POI", "level": 1, "status": "required", "reason": "deposit"}]}
    api.services.store.kyc.save_profile(profile)
    assert api.body("MngGetKycProfile", {"customer_id": 501}) == {"profile": profile}
    assert api.error("MngGetKycProfile", {"customer_id": 502})["code"] == "NOT_FOUND"
    assert api.error("MngGetKycProfile", {})["code"] == "VALIDATION_FAILED"
