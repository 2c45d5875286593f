"""Reference data and KYC step templates: merge-upserts, key checks, equality finds."""

from __future__ import annotations

import pytest

from brokerflow.errors import ValidationFailed

# kind -> (a full record, its key as delete/get take it, a partial update of it)
SAMPLES = {
    "group": ({"group": "real\\alpha-usd", "brand": "alpha", "currency": "USD"}, "real\\alpha-usd",
              {"group": "real\\alpha-usd", "currency": "EUR"}),
    "account": ({"login": 1001, "group": "real\\alpha-usd", "name": "Ann", "email": "a@x.io", "enable": True,
                 "leverage": 100, "customer_id": 55}, 1001, {"login": 1001, "leverage": 500}),
    "customer": ({"id": 55, "brand": "alpha", "email": "a@x.io", "country": "CY", "kyc_current_level": 0},
                 55, {"id": 55, "kyc_current_level": 1}),
    "manager": ({"id": 9, "name": "Max", "email": "m@x.io", "enabled": True, "brand": "alpha"}, 9,
                {"id": 9, "enabled": False}),
    "rate": ({"currency": "EUR", "usd": 1.08}, "EUR", {"currency": "EUR", "usd": 1.1}),
    "kyc_step_template": ({"brand": "alpha", "step_code": "POA", "level": 1, "required": True, "active": True,
                           "title": "Proof of address"}, ("alpha", "POA"),
                          {"brand": "alpha", "step_code": "POA", "active": False}),
}
KEY_PATHS = {
    "group": ["record.group"], "account": ["record.login"], "customer": ["record.id"],
    "manager": ["record.id"], "rate": ["record.currency"],
    "kyc_step_template": ["record.brand", "record.step_code"],
}


@pytest.mark.parametrize("kind", SAMPLES)
def test_upsert_stores_the_whole_record_and_merges_partial_updates(store, kind):
    record, key, partial = SAMPLES[kind]
    assert store.reference.upsert(kind, record) == record
    merged = store.reference.upsert(kind, partial)
    assert merged == {**record, **partial}
    assert store.reference.get(kind, key) == merged
    assert store.reference.all(kind) == [merged]


@pytest.mark.parametrize("kind", SAMPLES)
def test_delete_removes_one_record(store, kind):
    record, key, _ = SAMPLES[kind]
    store.reference.upsert(kind, record)
    assert store.reference.delete(kind, key) is True
    assert store.reference.get(kind, key) is None
    assert store.reference.delete(kind, key) is False


@pytest.mark.parametrize("kind", SAMPLES)
def test_a_record_without_its_key_is_refused_with_the_paths(store, kind):
    with pytest.raises(ValidationFailed) as info:
        store.reference.upsert(kind, {"note": "no key"})
    assert [d["path"] for d in info.value.details] == KEY_PATHS[kind]


@pytest.mark.parametrize(("kind", "record", "path"), [
    ("account", {"login": "1001"}, "record.login"),
    ("account", {"login": True}, "record.login"),
    ("account", {"login": 1, "customer_id": "55"}, "record.customer_id"),
    ("customer", {"id": 1, "brand": 7}, "record.brand"),
    ("kyc_step_template", {"brand": "a", "step_code": "X", "level": "1"}, "record.level"),
    ("kyc_step_template", {"brand": "a", "step_code": "X", "required": "yes"}, "record.required"),
])
def test_indexed_fields_of_the_wrong_type_are_refused(store, kind, record, path):
    with pytest.raises(ValidationFailed) as info:
        store.reference.upsert(kind, record)
    assert path in [d["path"] for d in info.value.details]


def test_an_unknown_kind_is_refused(store):
    with pytest.raises(ValidationFailed) as info:
        store.reference.upsert("planet", {"id": 1})
    assert info.value.details[0]["path"] == "kind"


def test_find_filters_by_equality_on_indexed_and_other_fields(store):
    store.reference.upsert_many("account", [
        {"login": 1, "group": "g1", "country": "CY", "customer_id": 5},
        {"login": 2, "group": "g1", "country": "DE"},
        {"login": 3, "group": "g2", "country": "CY"},
    ])
    logins = lambda filters: [r["login"] for r in store.reference.find("account", filters)]  # noqa: E731
    assert logins({}) == [1, 2, 3]
    assert logins({"group": "g1"}) == [1, 2]
    assert logins({"country": "CY"}) == [1, 3]
    assert logins({"group": "g1", "country": "CY"}) == [1]
    assert logins({"login": 3}) == [3]
    assert logins({"customer_id": 5}) == [1]
    assert logins({"login": "3"}) == []  # wrong type: matches nothing, no database error
    assert logins({"group": "nope"}) == []


def test_upsert_many_merges_in_order_in_one_batch(store):
    merged = store.reference.upsert_many("rate", [
        {"currency": "EUR", "usd": 1.0}, {"currency": "GBP", "usd": 1.3}, {"currency": "EUR", "usd": 1.2},
    ])
    assert merged[-1] == {"currency": "EUR", "usd": 1.2}
    assert store.reference.all("rate") == [{"currency": "EUR", "usd": 1.2}, {"currency": "GBP", "usd": 1.3}]


def test_upsert_many_merges_over_stored_records_and_within_the_batch(store):
    store.reference.upsert("customer", {"id": 1, "brand": "alpha", "vip": True, "risk_level": "low"})
    store.reference.upsert("kyc_step_template", {"brand": "alpha", "step_code": "ID", "level": 1, "title": "ID"})
    merged = store.reference.upsert_many("customer", [
        {"id": 1, "risk_level": "high"}, {"id": 2, "brand": "beta"}, {"id": 1, "status": "active"},
    ] + [{"id": n, "brand": "gamma"} for n in range(3, 450)])  # several statements' worth
    assert merged[0] == {"id": 1, "brand": "alpha", "vip": True, "risk_level": "high"}
    assert merged[2] == {"id": 1, "brand": "alpha", "vip": True, "risk_level": "high", "status": "active"}
    assert store.reference.get("customer", 1) == merged[2]
    assert store.reference.get("customer", 2) == {"id": 2, "brand": "beta"}
    assert len(store.reference.all("customer")) == 449
    assert [r["id"] for r in store.reference.find("customer", {"brand": "alpha"})] == [1]
    store.reference.upsert_many("kyc_step_template", [{"brand": "alpha", "step_code": "ID", "level": 2}])
    assert store.reference.get("kyc_step_template", ("alpha", "ID")) == {
        "brand": "alpha", "step_code": "ID", "level": 2, "title": "ID"}


def test_upsert_many_checks_every_record_before_writing_any(store):
    with pytest.raises(ValidationFailed):
        store.reference.upsert_many("rate", [{"currency": "EUR", "usd": 1.0}, {"usd": 2.0}])
    assert store.reference.all("rate") == []


def test_one_unstorable_record_fails_its_batch_and_only_itself_record_by_record(store):
    """The router's fallback: ``upsert_many`` is all or nothing; ``upsert_each`` keeps the good records.

    On PostgreSQL the failed statement aborts its transaction; the next records must still be
    stored on the same connection.
    """
    batch = [{"login": 1, "group": "g"}, {"login": 2**63, "group": "g"}, {"login": 2, "group": "g"},
             {"login": 3, "group": "g", "tags": {b"k": 1}}, {"login": 4, "group": "g", "raw": b"\xff"},
             {"login": 5, "group": "g"}, {"group": "g"}]
    with pytest.raises(Exception):  # noqa: B017 - which one depends on the backend (overflow, bigint range)
        store.reference.upsert_many("account", batch[:3])
    assert store.reference.all("account") == []
    failures = store.reference.upsert_each("account", [*batch, {"login": 1, "name": "later"}])
    assert [index for index, _ in failures] == [1, 3, 4, 6]
    assert isinstance(failures[-1][1], ValidationFailed)
    assert store.reference.all("account") == [{"login": 1, "group": "g", "name": "later"},
                                              {"login": 2, "group": "g"}, {"login": 5, "group": "g"}]


def test_templates_are_found_by_brand_and_flags(store):
    for code, level, active in (("POI", 1, True), ("POA", 1, False), ("SOF", 2, True)):
        store.reference.upsert("kyc_step_template",
                               {"brand": "alpha", "step_code": code, "level": level, "required": True,
                                "active": active, "title": code})
    store.reference.upsert("kyc_step_template", {"brand": "beta", "step_code": "POI", "level": 1})
    found = store.reference.find("kyc_step_template", {"brand": "alpha", "active": True})
    assert [t["step_code"] for t in found] == ["POI", "SOF"]
    assert store.reference.get("kyc_step_template", ("beta", "POI")) == {
        "brand": "beta", "step_code": "POI", "level": 1}
