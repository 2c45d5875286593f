"""``customer.set_risk_level`` / ``customer.set_status``: the customer record's single writer.

A change is stored, published as ``customer.changed`` and echoed to the router as an
internal ``customer.push`` update one causal level deeper, so ``customer.updated`` rules see
it and a rule that keeps changing customers stops at the loop bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from actors.actions import ActionActor
from actors.base import StatsRegistry
from actors.messages import RunJob
from actors.pipeline import Pipeline
from brokerflow.errors import ActionFailed
from workflow.events import Event
from workflow.reference import ReferenceData

FIELD_OF = {"customer.set_risk_level": "risk_level", "customer.set_status": "status"}


class CustomerActor(ActionActor):
    kind = "customer"

    def __init__(self, stats: StatsRegistry, pipeline: Pipeline, now_ms: Callable[[], int],
                 refs: ReferenceData, reference_repo: Any, outbound: Any,
                 echo: Callable[[list[Event]], None]) -> None:
        super().__init__("customer", stats, pipeline, now_ms)
        self.refs, self.repo, self.outbound, self.echo = refs, reference_repo, outbound, echo
        self.known: dict[int, dict[str, Any]] = {}  # values this actor wrote, ahead of the replica
        self.changes: list[tuple[RunJob, int, dict[str, Any]]] = []

    def perform(self, job: RunJob, params: Mapping[str, Any]) -> dict[str, Any]:
        action_type = job.next_action["type"]
        field = FIELD_OF[action_type]
        value = params.get(field)
        customer_id = job.context.get("_customer_id")
        if customer_id is None:
            raise ActionFailed(f"{action_type} needs a linked customer; this event has none")
        current = {**self.refs.customers.get(customer_id, {}), **self.known.get(customer_id, {})}
        if current.get(field) == value:
            return {"changed": False}
        self.known.setdefault(customer_id, {})[field] = value
        self.changes.append((job, customer_id, {field: value}))
        return {"changed": True}

    def commit(self) -> None:
        if not self.changes:
            return
        changes, self.changes = self.changes, []
        merged: dict[int, dict[str, Any]] = {}
        for _, customer_id, change in changes:
            merged.setdefault(customer_id, {"id": customer_id}).update(change)
        stored = {record["id"]: record for record in
                  (self.repo.upsert("customer", record) for record in merged.values())}
        echoes = []
        now = self.now_ms()
        for job, customer_id, change in changes:
            self.outbound.send("customer.changed", {"customer_id": customer_id, "changes": change,
                                                    "rule_id": job.rule_id, "run_id": job.run_id})
            echoes.append(Event("customer.push", "EV_RECORD_UPDATE", stored[customer_id],
                                source="brokerflow", id=f"run:{job.run_id}:{job.next_index}",
                                ts_ms=now, received_ms=now, depth=job.depth + 1))
        self.echo(echoes)
