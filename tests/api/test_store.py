"""``api.store``'s Protocols name only what the real storage ``Store`` provides."""

from __future__ import annotations

from typing import Protocol

from brokerflow.api.store import ApiStore
from tests.protocols import protocol_gaps


def test_the_storage_store_provides_everything_the_api_uses(store):
    assert protocol_gaps(store, ApiStore) == []


class _Drifted(Protocol):
    def get(self, rule_id: int, brand: str) -> dict: ...

    def rename(self, rule_id: int) -> None: ...


class _DriftedStore(Protocol):
    @property
    def rules(self) -> _Drifted: ...


def test_a_drifted_method_and_a_missing_one_are_both_named(store):
    gaps = protocol_gaps(store, _DriftedStore)
    assert len(gaps) == 2
    assert gaps[0].startswith("_DriftedStore.rules -> _Drifted.get: RuleRepository takes [('rule_id'")
    assert gaps[1] == "_DriftedStore.rules -> _Drifted.rename: RuleRepository has no 'rename'"
