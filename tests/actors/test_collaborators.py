"""The actors' storage Protocols name only what the real repositories provide.

Actors never import storage; the engine hands them ``store.<repository>``. Each pair below is
one such hand-over (see ``brokerflow.app.engine`` and ``brokerflow.app.automation``).
"""

from __future__ import annotations

import pytest

from brokerflow.actors.customer import CustomerRecords
from brokerflow.actors.kyc import KycProfiles
from brokerflow.actors.notifier import NotificationRows
from brokerflow.actors.processes import FlowSource, ProcessStates
from brokerflow.actors.router import ReferenceRecords
from brokerflow.actors.rules import RunIdSource
from brokerflow.actors.runlog import RunRows
from brokerflow.actors.scheduler import MetaValues, ScheduleClaims
from tests.protocols import protocol_gaps

HANDED = [
    (RunIdSource, "runs"), (RunRows, "runs"), (NotificationRows, "notifications"), (KycProfiles, "kyc"),
    (CustomerRecords, "reference"), (ReferenceRecords, "reference"), (ScheduleClaims, "schedules"),
    (MetaValues, "meta"), (FlowSource, "flows"), (ProcessStates, "processes"),
]


@pytest.mark.parametrize(("protocol", "repository"), HANDED, ids=[p.__name__ for p, _ in HANDED])
def test_the_repository_handed_to_an_actor_provides_its_protocol(store, protocol, repository):
    assert protocol_gaps(getattr(store, repository), protocol) == []
