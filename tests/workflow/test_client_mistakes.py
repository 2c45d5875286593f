"""Caller-given data that used to raise deep in the domain is refused, or finds nothing, cleanly."""

from __future__ import annotations

import pytest

from brokerflow.errors import BadRequest
from brokerflow.workflow.machine.commands import INPUT_DEPTH_MAX, as_input
from brokerflow.workflow.modes.dryrun import dry_run_mode
from brokerflow.workflow.reference import ReferenceData


def nested(depth: int) -> dict:
    value: object = 1
    for level in range(depth - 1):
        value = {"k": value} if level % 2 else [value]
    return {"k": value}


def test_input_at_the_depth_cap_is_accepted():
    assert as_input(nested(INPUT_DEPTH_MAX)) == nested(INPUT_DEPTH_MAX)


@pytest.mark.parametrize("depth", [INPUT_DEPTH_MAX + 1, 5000])
def test_input_past_the_depth_cap_is_a_bad_request_not_a_recursion_error(depth):
    with pytest.raises(BadRequest, match=f"at most {INPUT_DEPTH_MAX}"):
        as_input(nested(depth))


@pytest.mark.parametrize("customer_id", [[1], {"a": 1}, ([1],)])
def test_an_unhashable_customer_id_in_a_mode_dry_run_finds_no_customer(customer_id):
    refs = ReferenceData()
    refs.apply("customer", {"id": 1, "brand": "alpha"})
    rule = {"brand": "alpha", "trigger": "interval", "status": "active",
            "conditions": [{"field": "customer.id", "op": "==", "value": 1}], "actions": []}
    result = dry_run_mode(rule, "interval", {"customer_id": customer_id}, refs)
    assert result["matched"] is False
    assert "customer_id" in result["reason"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_condition_number_must_be_finite(value):
    from brokerflow.workflow.rules.validation import validate_rule
    rule = {"name": "r", "brand": "alpha", "trigger": "deposit.created",
            "conditions": [{"field": "amount_usd", "op": ">", "value": value}]}
    assert [p.path for p in validate_rule(rule).errors] == ["conditions[0].value"]
