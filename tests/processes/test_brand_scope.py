"""Brand scope of the Workflow Machine, through a real engine and both front doors.

A brand-scoped token drives only processes of its brand, and only ones whose customer is of its
brand: the state actions of a process change that customer, so driving another brand's process
(or linking another brand's customer to one's own) would change another brand's data.
"""

from __future__ import annotations

import pytest

from tests.conftest import wait_until

REVIEW = {
    "name": "review", "initial": "open",
    "states": {
        "open": {"on": {"flag": "flagged"}},
        "flagged": {"on": {"close": "done"},
                    "actions": [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}]},
        "done": {"final": True},
    },
}
ALPHA_CUSTOMER, BETA_CUSTOMER = 1, 2


@pytest.fixture
def world(start_engine):
    running = start_engine()
    running.add_flows(REVIEW)
    running.api.call("MngUpsertCustomer", {"record": {"id": ALPHA_CUSTOMER, "brand": "alpha", "risk_level": "low"}})
    running.api.call("MngUpsertCustomer", {"record": {"id": BETA_CUSTOMER, "brand": "beta", "risk_level": "low"}})
    running.alpha = running.engine.store.tokens.create("SESSION_ADMIN", brand="alpha", name="alpha admin")[0]
    return running


def risk_of(running, customer_id: int) -> str:
    return running.api.call("MngGetCustomers", {"id": customer_id})["records"][0].get("risk_level")


def runs_of(running, pid: str) -> list[dict]:
    return [r for r in running.api.call("MngGetWorkflowRunLog", {})["runs"] if r["event_id"] == pid]


def denied(door, cmd: str, **kwargs) -> dict:
    error = door.fail(cmd, "ACCESS_DENIED", 403, **kwargs)
    assert "alpha" in error["text"]
    return error


def flag_own_customer(world, door) -> str:
    """An allowed run on alpha's customer: once it is logged, earlier runs would be too."""
    pid = door.ok("START", name="review", input={"customer_id": ALPHA_CUSTOMER})["pid"]
    door.ok("EVENT", pid=pid, name="flag")
    wait_until(lambda: runs_of(world, pid) and risk_of(world, ALPHA_CUSTOMER) == "high")
    return pid


@pytest.mark.parametrize("kind", ["rep", "http"])
def test_a_scoped_token_drives_its_brands_processes_and_the_actions_run_in_its_brand(world, kind):
    door = world.door(kind, world.alpha)
    pid = flag_own_customer(world, door)
    run = runs_of(world, pid)[0]
    assert (run["brand"], run["status"]) == ("alpha", "success")
    assert door.ok("AVAILABLE_EVENTS", pid=pid)["events"] == ["close"]
    assert door.ok("EVENT", pid=pid, name="close")["result"] == "END"


@pytest.mark.parametrize("kind", ["rep", "http"])
def test_a_scoped_token_cannot_create_a_process_for_another_brand_or_its_customer(world, kind):
    door = world.door(kind, world.alpha)
    denied(door, "START", name="review", input={"brand": "beta"})
    denied(door, "START", name="review", input={"customer_id": BETA_CUSTOMER})
    denied(door, "START", name="review", input={"brand": "alpha", "customer_id": BETA_CUSTOMER})
    denied(door, "START", name="review", input={"customer_id": 99})  # not known to be alpha's
    denied(door, "RESTORE", name="review", input={"state": "flagged", "customer_id": BETA_CUSTOMER})
    flag_own_customer(world, door)
    assert risk_of(world, BETA_CUSTOMER) == "low"


@pytest.mark.parametrize("kind", ["rep", "http"])
def test_a_process_of_another_brand_or_of_none_is_out_of_a_scoped_tokens_reach(world, kind):
    admin, door = world.door(kind, world.admin), world.door(kind, world.alpha)
    beta = admin.ok("START", name="review", input={"brand": "beta", "customer_id": BETA_CUSTOMER})["pid"]
    brandless = admin.ok("START", name="review")["pid"]
    for pid in (beta, brandless):
        denied(door, "EVENT", pid=pid, name="flag")
        denied(door, "AVAILABLE_EVENTS", pid=pid)
        denied(door, "HISTORY", pid=pid, name="h1")
        denied(door, "ABORT", pid=pid)
        assert admin.ok("AVAILABLE_EVENTS", pid=pid)["events"] == ["flag"]  # unchanged, still the admin's
    flag_own_customer(world, door)
    assert risk_of(world, BETA_CUSTOMER) == "low"
    assert runs_of(world, beta) == []


def test_a_scoped_token_cannot_link_another_brands_customer_or_brand_to_its_process(world):
    door = world.door("rep", world.alpha)
    pid = door.ok("START", name="review", input={"customer_id": ALPHA_CUSTOMER})["pid"]
    denied(door, "EVENT", pid=pid, name="flag", input={"customer_id": BETA_CUSTOMER})
    denied(door, "EVENT", pid=pid, name="flag", input={"brand": "beta"})
    assert door.ok("AVAILABLE_EVENTS", pid=pid)["events"] == ["flag"]  # a refused command changed nothing
    assert door.ok("HISTORY", pid=pid, name="h1")["output"] == {"customer_id": ALPHA_CUSTOMER}


def test_an_own_brand_process_linking_another_brands_customer_is_not_driven_by_a_scoped_token(world):
    admin, door = world.door("rep", world.admin), world.door("rep", world.alpha)
    pid = admin.ok("START", name="review", input={"brand": "alpha", "customer_id": BETA_CUSTOMER})["pid"]
    denied(door, "EVENT", pid=pid, name="flag")
    denied(door, "HISTORY", pid=pid, name="h1")  # its steps hold the other brand's customer's inputs
    denied(door, "AVAILABLE_EVENTS", pid=pid)
    flag_own_customer(world, door)
    assert risk_of(world, BETA_CUSTOMER) == "low"


def test_the_brand_of_a_process_is_fixed_at_start_whatever_a_later_input_says(world):
    admin = world.door("rep", world.admin)
    pid = admin.ok("START", name="review", input={"brand": "alpha", "customer_id": ALPHA_CUSTOMER})["pid"]
    admin.ok("EVENT", pid=pid, name="flag", input={"brand": "beta"})
    run = wait_until(lambda: runs_of(world, pid))[0]
    assert run["brand"] == "alpha"
    assert world.door("rep", world.alpha).ok("EVENT", pid=pid, name="close")["result"] == "END"


def test_a_brandless_process_takes_the_first_brand_an_input_names_and_keeps_it(world):
    admin, door = world.door("rep", world.admin), world.door("rep", world.alpha)
    pid = admin.ok("START", name="review")["pid"]
    denied(door, "AVAILABLE_EVENTS", pid=pid)
    admin.ok("EVENT", pid=pid, name="flag", input={"brand": "alpha", "customer_id": ALPHA_CUSTOMER})
    assert wait_until(lambda: runs_of(world, pid))[0]["brand"] == "alpha"
    assert door.ok("AVAILABLE_EVENTS", pid=pid)["events"] == ["close"]
