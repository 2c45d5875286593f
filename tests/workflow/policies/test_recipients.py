"""notify.manager recipients: each step of the seed's fallback chain."""

from __future__ import annotations

import pytest

from brokerflow.workflow.policies.recipients import manager_id_of, recipients

MANAGERS = [{"id": 9, "enabled": True}, {"id": 4}, {"id": 6, "enabled": False}, {"id": 2, "enabled": True}]
CUSTOMER = {"id": 7, "assigned_manager_id": 11, "manager_id": 12}


def test_an_explicit_manager_id_wins():
    assert recipients(5, CUSTOMER, MANAGERS) == [5]


@pytest.mark.parametrize("omitted", [None, 0, "0", "", False])
def test_without_manager_id_the_customers_assigned_manager(omitted):
    assert recipients(omitted, CUSTOMER, MANAGERS) == [11]


@pytest.mark.parametrize("assigned", [None, 0])
def test_then_the_customers_manager(assigned):
    assert recipients(None, {**CUSTOMER, "assigned_manager_id": assigned}, MANAGERS) == [12]


def test_then_every_enabled_manager_of_the_brand_sorted():
    customer = {"id": 7, "assigned_manager_id": None, "manager_id": 0}
    assert recipients(0, customer, MANAGERS) == [2, 4, 9]


def test_no_customer_broadcasts():
    assert recipients(None, None, MANAGERS) == [2, 4, 9]


def test_nobody_to_notify_is_an_empty_list():
    assert recipients(None, None, []) == []
    assert recipients(None, {"id": 1}, [{"id": 3, "enabled": False}]) == []


def test_broadcast_lists_each_manager_once():
    assert recipients(None, None, [{"id": 3}, {"id": 3}, {"id": None}]) == [3]


@pytest.mark.parametrize(("value", "expected"), [
    (5, 5), ("5", 5), (" 5 ", 5), (0, None), (-1, None), (True, None), (None, None), ("x", None), (1.5, None),
])
def test_manager_id_of(value, expected):
    assert manager_id_of(value) == expected
