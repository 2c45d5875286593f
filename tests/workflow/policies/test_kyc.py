"""KYC decisions: attach steps once, raise levels only upwards, compute the current level."""

from __future__ import annotations

import copy

import pytest

from brokerflow.errors import ActionFailed
from brokerflow.workflow.policies import kyc

POI = {"brand": "acme", "step_code": "POI", "level": 1, "required": True, "active": True}
POA = {"brand": "acme", "step_code": "POA", "level": 1, "required": True, "active": True}
SOF = {"brand": "acme", "step_code": "SOF", "level": 2, "required": True, "active": True}
SELFIE = {"brand": "acme", "step_code": "SELFIE", "level": 1, "required": False, "active": True}
OLD = {"brand": "acme", "step_code": "OLD", "level": 1, "required": True, "active": False}
OTHER = {"brand": "zeta", "step_code": "ZETA", "level": 1, "required": True, "active": True}
TEMPLATES = [SOF, POI, POA, SELFIE, OLD, OTHER]


def step(code, level, status="required", reason=None):
    return {"step_code": code, "level": level, "status": status, "reason": reason}


@pytest.fixture
def profile():
    return kyc.new_profile(7, "acme")


def test_new_profile_is_empty(profile):
    assert profile == {"customer_id": 7, "brand": "acme", "required_level": 0, "current_level": 0,
                       "steps": []}


class TestRequireStep:
    def test_attaches_the_template_step_with_its_level(self, profile):
        updated, changed = kyc.require_step(profile, POI, None, "deposit")
        assert changed
        assert updated["steps"] == [step("POI", 1, reason="deposit")]
        assert profile["steps"] == []

    def test_level_param_overrides_the_template_level(self, profile):
        updated, _ = kyc.require_step(profile, POI, 3, None)
        assert updated["steps"] == [step("POI", 3)]

    def test_reuses_an_existing_step(self, profile):
        once, _ = kyc.require_step(profile, POI, None, "first")
        twice, changed = kyc.require_step(once, POI, 2, "second")
        assert not changed and twice["steps"] == [step("POI", 1, reason="first")]

    def test_missing_template_fails_the_action(self, profile):
        with pytest.raises(ActionFailed, match="no KYC step template 'POI'"):
            kyc.require_step(profile, None, None, None, step_code="POI")
        with pytest.raises(ActionFailed, match="no KYC step template"):
            kyc.require_step(profile, None, None, None)

    def test_inactive_template_fails_the_action(self, profile):
        with pytest.raises(ActionFailed, match="'OLD' is not active"):
            kyc.require_step(profile, OLD, None, None)

    def test_a_new_pending_step_lowers_the_current_level(self):
        done = {**kyc.new_profile(7, "acme"), "current_level": 1, "steps": [step("POI", 1, "approved")]}
        updated, _ = kyc.require_step(done, POA, None, None)
        assert updated["current_level"] == 0


class TestRaiseLevel:
    def test_attaches_active_required_templates_of_the_brand_up_to_the_level(self, profile):
        updated, changed = kyc.raise_level(profile, 1, TEMPLATES, "big deposit")
        assert changed and updated["required_level"] == 1
        assert [s["step_code"] for s in updated["steps"]] == ["POA", "POI"]
        assert all(s["status"] == "required" and s["reason"] == "big deposit" for s in updated["steps"])

    def test_higher_level_adds_the_higher_templates_once(self, profile):
        level1, _ = kyc.raise_level(profile, 1, TEMPLATES, None)
        level2, changed = kyc.raise_level(level1, 2, TEMPLATES, None)
        assert changed and level2["required_level"] == 2
        assert [s["step_code"] for s in level2["steps"]] == ["POA", "POI", "SOF"]

    @pytest.mark.parametrize("level", [0, 1])
    def test_level_never_decreases_or_repeats(self, profile, level):
        at_one, _ = kyc.raise_level(profile, 1, TEMPLATES, None)
        same, changed = kyc.raise_level(at_one, level, TEMPLATES, None)
        assert not changed and same == at_one

    def test_keeps_steps_required_before(self, profile):
        with_poi, _ = kyc.require_step(profile, POI, None, "manual")
        updated, _ = kyc.raise_level(with_poi, 1, TEMPLATES, "auto")
        assert updated["steps"][0] == step("POI", 1, reason="manual")
        assert [s["step_code"] for s in updated["steps"]] == ["POI", "POA"]

    def test_raising_without_templates_still_raises_the_level(self, profile):
        updated, changed = kyc.raise_level(profile, 2, [], None)
        assert changed and updated["required_level"] == 2 and updated["steps"] == []

    def test_does_not_mutate_the_input(self, profile):
        before = copy.deepcopy(profile)
        kyc.raise_level(profile, 2, TEMPLATES, None)
        assert profile == before


class TestStepStatus:
    @pytest.fixture
    def required(self, profile):
        return kyc.raise_level(profile, 2, TEMPLATES, None)[0]

    def test_approving_all_steps_of_a_level_reaches_it(self, required):
        one, changed = kyc.apply_step_status(required, "POI", 1, "approved")
        assert changed and one["current_level"] == 0
        two, _ = kyc.apply_step_status(one, "POA", 1, "approved")
        assert two["current_level"] == 1
        three, _ = kyc.apply_step_status(two, "SOF", 2, "approved")
        assert three["current_level"] == 2

    def test_a_higher_level_needs_the_lower_ones(self, required):
        updated, _ = kyc.apply_step_status(required, "SOF", 2, "approved")
        assert updated["current_level"] == 0

    def test_rejecting_an_approved_step_lowers_the_level(self, required):
        approved = required
        for code in ("POI", "POA"):
            approved, _ = kyc.apply_step_status(approved, code, 1, "approved")
        rejected, changed = kyc.apply_step_status(approved, "POA", 1, "rejected")
        assert changed and rejected["current_level"] == 0
        assert approved["current_level"] == 1

    def test_the_same_status_again_is_no_change(self, required):
        once, _ = kyc.apply_step_status(required, "POI", 1, "approved")
        again, changed = kyc.apply_step_status(once, "POI", 1, "approved")
        assert not changed and again == once

    @pytest.mark.parametrize("status", ["pending", "in_review", ""])
    def test_other_statuses_are_ignored(self, required, status):
        same, changed = kyc.apply_step_status(required, "POI", 1, status)
        assert not changed and same == required

    def test_an_unknown_step_is_recorded(self, profile):
        updated, changed = kyc.apply_step_status(profile, "POI", 1, "approved")
        assert changed and updated["steps"] == [step("POI", 1, "approved")]
        assert updated["current_level"] == 1

    def test_an_unknown_step_without_level_does_not_count(self, profile):
        updated, changed = kyc.apply_step_status(profile, "EXTRA", None, "rejected")
        assert changed and updated["current_level"] == 0
        approved, _ = kyc.apply_step_status(updated, "POI", 1, "approved")
        assert approved["current_level"] == 1

    def test_does_not_mutate_the_input(self, required):
        before = copy.deepcopy(required)
        kyc.apply_step_status(required, "POI", 1, "approved")
        assert required == before


@pytest.mark.parametrize(("steps", "level"), [
    ([], 0),
    ([step("A", 1, "approved")], 1),
    ([step("A", 1, "approved"), step("B", 1, "required")], 0),
    ([step("A", 1, "approved"), step("B", 2, "approved"), step("C", 3, "rejected")], 2),
    ([step("A", 1, "approved"), step("B", 3, "approved")], 3),
    ([step("A", 2, "approved")], 2),
])
def test_current_level_table(steps, level):
    assert kyc.current_level(steps) == level


@pytest.mark.parametrize("level", [0, 1, None, "2", True])
def test_raises_level_answers_whether_raise_level_would_change_the_profile(level):
    profile = {**kyc.new_profile(1, "alpha"), "required_level": 1}
    assert kyc.raises_level(profile, level) is kyc.raise_level(profile, level, [], None)[1]
    assert kyc.raises_level(profile, 2) and kyc.raise_level(profile, 2, [], None)[1]


def test_nothing_changed_hands_back_the_same_profile_untouched():
    profile = {**kyc.new_profile(1, "alpha"), "required_level": 2,
               "steps": [{"step_code": "POI", "level": 1, "status": "approved", "reason": None}]}
    before = copy.deepcopy(profile)
    template = {"step_code": "POI", "level": 1, "active": True}
    assert kyc.require_step(profile, template, None, None) == (profile, False)
    assert kyc.require_step(profile, template, None, None)[0] is profile
    assert kyc.raise_level(profile, 1, [template], None)[0] is profile
    assert kyc.apply_step_status(profile, "POI", 1, "approved")[0] is profile
    assert kyc.apply_step_status(profile, "POI", 1, "pending")[0] is profile
    assert profile == before
