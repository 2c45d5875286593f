"""The router's ``Ownership`` as ``serve --cluster`` swaps it at runtime, takeover skips included."""

from __future__ import annotations

from brokerflow.actors.router import Ownership
from brokerflow.workflow.cluster import Skips, Window
from brokerflow.workflow.events import Event
from brokerflow.workflow.partitions import partition_of
from brokerflow.workflow.reference import ReferenceData


def customer_push(customer: int, seq: int) -> Event:
    return Event("customer.push", "EV_RECORD_UPDATE", {"id": customer}, source="crm", seq=seq)


def test_the_owned_set_is_swapped_whole_and_everything_follows_it():
    refs = ReferenceData()
    ownership = Ownership(8, ())
    event = customer_push(7, 1)
    mine = partition_of("c:7", 8)
    assert not ownership.owns(event, refs) and not ownership.everything
    ownership.set({mine})
    assert ownership.owns(event, refs) and ownership.owned == frozenset({mine})
    ownership.set(range(8))
    assert ownership.everything
    ownership.set(set(range(8)) - {mine})
    assert not ownership.owns(event, refs) and not ownership.everything


def test_a_replayed_event_the_skips_cover_is_not_owned_and_a_new_one_is():
    refs = ReferenceData()
    mine = partition_of("c:7", 8)
    ownership = Ownership(8, range(8))
    ownership.set(range(8), Skips().with_takeover(set(), {}, {"crm": Window(10, 20, frozenset({mine}))}))
    assert not ownership.owns(customer_push(7, 15), refs)  # routed here before the rewind
    assert ownership.owns(customer_push(7, 20), refs)
    assert ownership.owns(Event("customer.push", "EV_RECORD_UPDATE", {"id": 7}), refs)  # no ticket: never skipped
    ownership.set(range(8))  # the skips stay when only the set changes
    assert not ownership.owns(customer_push(7, 15), refs)
