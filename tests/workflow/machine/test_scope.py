"""A process's brand and a scoped caller's limits, as pure rules over plain process states."""

from __future__ import annotations

import pytest

from brokerflow.errors import AccessDenied
from brokerflow.workflow.machine.scope import action_context, guard_after, guard_before, process_brand, settle_brand


class Guard:
    """A caller scoped to ``alpha`` that knows customer 1 as alpha's and 2 as beta's."""

    brand = "alpha"
    customers = {1: "alpha", 2: "beta"}

    def allow(self, brand, customer_id=None):
        if brand != self.brand or (customer_id is not None and self.customers.get(customer_id) != self.brand):
            raise AccessDenied("out of scope")


def state(fixed="alpha", **data):
    """A saved process of brand ``fixed`` whose input is ``data``."""
    return {"pid": "p1", "brand": fixed, "input": data, "stack": [{"flow": "kyc", "state": "start"}]}


def test_a_new_process_takes_the_inputs_brand_else_the_creating_tokens_else_none():
    for data, guard, expected in [({"brand": "beta"}, None, "beta"), ({}, Guard(), "alpha"), ({}, None, None),
                                  ({"brand": ""}, Guard(), "alpha")]:
        new = {"input": data}
        settle_brand(new, "START", data, guard)
        assert new["brand"] == expected


def test_a_brand_once_fixed_stays_whatever_later_inputs_say():
    kept = state("alpha", brand="beta")
    settle_brand(kept, "EVENT", {"brand": "beta"}, None)
    assert kept["brand"] == "alpha" and process_brand(kept) == "alpha"
    assert action_context(kept)["brand"] == "alpha"


def test_a_process_without_a_brand_takes_the_first_one_an_input_names():
    pending = state(None, brand="beta")
    settle_brand(pending, "EVENT", {"brand": "beta"}, None)
    assert pending["brand"] == "beta"


def test_a_state_saved_before_brands_were_fixed_falls_back_to_its_inputs_brand():
    assert process_brand({"input": {"brand": "alpha"}}) == "alpha"
    assert process_brand({"input": "not a map"}) is None


@pytest.mark.parametrize(("cmd", "current", "data"), [
    ("START", None, {"brand": "beta"}),          # creating for another brand
    ("START", None, {"customer_id": 2}),         # creating over another brand's customer
    ("START", None, {"customer_id": 99}),        # a customer not known to be alpha's
    ("EVENT", state("beta"), {}),                # driving another brand's process
    ("EVENT", state(None), {}),                  # driving a brand-less one
    ("EVENT", state("alpha"), {"brand": "beta"}),  # naming another brand
    ("EVENT", state("alpha"), {"customer_id": 2}),  # linking another brand's customer
    ("HISTORY", state("alpha", customer_id=2), {}),  # reading a process an admin linked to beta's customer
    ("AVAILABLE_EVENTS", state("alpha", customer_id=2), {}),
    ("EVENT", state("alpha", customer_id=2), {"customer_id": 1}),  # even to relink it
])
def test_a_scoped_caller_is_refused_before_anything_is_applied(cmd, current, data):
    with pytest.raises(AccessDenied):
        guard_before(Guard(), cmd, current, data)


def test_a_scoped_caller_may_drive_its_own_brands_process_over_its_own_customer():
    guard_before(Guard(), "START", None, {"customer_id": 1})
    guard_before(Guard(), "EVENT", state("alpha", customer_id=1), {"note": "ok"})
    guard_before(Guard(), "EVENT", None, {})  # unknown pid: the machine answers NOT_FOUND
    guard_after(Guard(), state("alpha", customer_id=1))


def test_the_state_a_command_leaves_is_checked_too():
    with pytest.raises(AccessDenied):
        guard_after(Guard(), state("alpha", customer_id=2))
