"""KYC profiles: save replaces, get returns the stored profile or None."""

from __future__ import annotations

import pytest

from brokerflow.errors import ValidationFailed


def profile(**changes) -> dict:
    data = {
        "customer_id": 55, "brand": "alpha", "required_level": 1, "current_level": 0,
        "steps": [{"step_code": "POI", "level": 1, "status": "required", "reason": "deposit"}],
    }
    data.update(changes)
    return data


def test_an_unknown_customer_has_no_profile(store):
    assert store.kyc.get_profile(55) is None
    assert store.kyc.get_profile("55") is None


def test_a_saved_profile_reads_back_the_same(store):
    assert store.kyc.save_profile(profile()) == profile()
    assert store.kyc.get_profile(55) == profile()


def test_saving_again_replaces_the_profile(store):
    store.kyc.save_profile(profile())
    steps = [*profile()["steps"], {"step_code": "POA", "level": 2, "status": "approved", "reason": None}]
    store.kyc.save_profile(profile(required_level=2, current_level=1, steps=steps))
    stored = store.kyc.get_profile(55)
    assert (stored["required_level"], stored["current_level"], len(stored["steps"])) == (2, 1, 2)


def test_levels_default_to_zero_and_steps_to_empty(store):
    assert store.kyc.save_profile({"customer_id": 7}) == {
        "customer_id": 7, "brand": None, "required_level": 0, "current_level": 0, "steps": []}


@pytest.mark.parametrize(("bad", "path"), [
    ({"brand": "a"}, "profile.customer_id"),
    ({"customer_id": "7"}, "profile.customer_id"),
    ({"customer_id": 7, "required_level": "1"}, "profile.required_level"),
    ({"customer_id": 7, "steps": {"POI": 1}}, "profile.steps"),
])
def test_an_invalid_profile_is_refused_with_its_path(store, bad, path):
    with pytest.raises(ValidationFailed) as info:
        store.kyc.save_profile(bad)
    assert [d["path"] for d in info.value.details] == [path]


def test_a_batch_of_profiles_is_saved_in_one_go(store):
    store.kyc.save_profile(profile(customer_id=56, required_level=0, steps=[]))
    saved = store.kyc.save_profiles([profile(), profile(customer_id=56, required_level=2)])
    assert [p["customer_id"] for p in saved] == [55, 56]
    assert store.kyc.get_profile(55) == profile()
    assert store.kyc.get_profile(56) == profile(customer_id=56, required_level=2)


def test_an_invalid_profile_in_a_batch_saves_none_of_it(store):
    with pytest.raises(ValidationFailed):
        store.kyc.save_profiles([profile(), profile(customer_id="x")])
    assert store.kyc.get_profile(55) is None


def test_profiles_of_many_customers_are_read_at_once_and_absent_ones_left_out(store):
    for customer_id in range(1, 1200, 2):  # odd ids only, more than one query's worth
        store.kyc.save_profile(profile(customer_id=customer_id, required_level=customer_id % 3))
    found = store.kyc.get_profiles(list(range(1, 1201)) + ["7", None])
    assert sorted(found) == list(range(1, 1200, 2))
    assert found[7] == store.kyc.get_profile(7) and found[7]["required_level"] == 1


def test_a_batch_may_carry_one_customer_twice_and_the_last_profile_wins(store):
    first, last = profile(required_level=1), profile(required_level=2)
    assert store.kyc.save_profiles([first, profile(customer_id=56), last]) == [first, profile(customer_id=56), last]
    assert store.kyc.get_profile(55)["required_level"] == 2
    assert store.kyc.get_profile(56) == profile(customer_id=56)
