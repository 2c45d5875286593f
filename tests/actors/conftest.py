"""Actors started directly with their real collaborators: a Store on a tmp SQLite file, a real
Pipeline, a real run log actor, a real outbound PUB, a real reference replica.

Every actor test follows one pattern (STYLE.md habit 3): send something that makes the actor
raise, then a good message, and see the failure counted and the good message processed.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.messages import Flush, RunJob
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.rules import RunIds
from brokerflow.actors.runlog import RunCounters, RunLogActor
from brokerflow.bus.outbound import Outbound
from brokerflow.storage import open_store
from brokerflow.workflow.reference import ReferenceData
from tests.conftest import wait_until
from tests.runtime.conftest import OutboundListener

NOW_MS = 1_795_000_000_000


def now_ms() -> int:
    return NOW_MS


WORLD = {
    "group": [{"group": "real-usd", "brand": "alpha", "currency": "USD"}],
    "account": [{"login": 1001, "group": "real-usd", "name": "Al", "customer_id": 501},
                {"login": 1003, "group": "real-usd", "name": "Direct"}],
    "customer": [{"id": 501, "brand": "alpha", "email": "al@example.com", "risk_level": "low", "status": "active",
                  "kyc_current_level": 0, "assigned_manager_id": 8}],
    "manager": [{"id": 7, "enabled": True, "brand": "alpha"}, {"id": 8, "enabled": True, "brand": "alpha"}],
    "rate": [],
    "kyc_step_template": [{"brand": "alpha", "step_code": "ID", "level": 1, "required": True, "active": True}],
}


@pytest.fixture
def store(sqlite_url) -> Iterator[Any]:
    store = open_store(sqlite_url)
    for kind, records in WORLD.items():
        store.reference.upsert_many(kind, records)
    yield store
    store.close()


@pytest.fixture
def refs(store) -> ReferenceData:
    refs = ReferenceData()
    for kind in WORLD:
        refs.load(kind, store.reference.all(kind))
    return refs


@pytest.fixture
def stats() -> StatsRegistry:
    return StatsRegistry()


@pytest.fixture
def pipeline(stats, store) -> Pipeline:
    """A pipeline whose run log is the real actor writing to the real store."""
    pipeline = Pipeline()
    pipeline.register("runlog", RunLogActor.start(stats, store.runs, RunCounters(), now_ms))
    return pipeline


@pytest.fixture
def run_ids(store) -> RunIds:
    return RunIds(store.runs)


@pytest.fixture
def outbound() -> Iterator[Outbound]:
    out = Outbound("tcp://127.0.0.1:0")
    yield out
    out.close()


@pytest.fixture
def listener(outbound) -> Iterator[OutboundListener]:
    import zmq

    context = zmq.Context()
    sub = OutboundListener(outbound.bound_endpoint, context)
    assert outbound.wait_subscribed(timeout_s=5)
    yield sub
    sub.close()
    context.term()


def make_job(run_ids: RunIds, actions: list[dict[str, Any]], customer_id: int | None = 501,
             brand: str = "alpha", **context: Any) -> RunJob:
    ctx = {"brand": brand, "_customer_id": customer_id, "_missing": {}, "_event_id": "e1", **context}
    return RunJob(run_id=run_ids.next(), rule_id=1, rule_version=1, brand=brand, trigger="deposit.created",
                  event_id="e1", actions=tuple(actions), context=ctx, started_ms=NOW_MS)


def logged(pipeline: Pipeline, store: Any, count: int) -> list[dict[str, Any]]:
    """Wait for ``count`` runs in the stored run log (flushing it), newest first."""
    def enough() -> list[dict[str, Any]] | None:
        reply: Future = Future()
        pipeline.refs["runlog"].tell(Flush(reply))
        reply.result(timeout=5)
        runs = store.runs.list()
        return runs if len(runs) >= count else None

    return wait_until(enough)


def cell(stats: StatsRegistry, name: str) -> dict[str, Any]:
    return next(c for c in stats.snapshot() if c["name"] == name)
