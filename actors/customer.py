"""``customer.set_risk_level`` / ``customer.set_status``: the customer record's single writer.

A change is stored, published as ``customer.changed`` and echoed to the router as an
internal ``customer.push`` update one causal level deeper, so ``customer.updated`` rules see
it and a rule that keeps changing customers stops at the loop bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from brokerflow.actors.actions import ActionActor
from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.messages import RunJob
from brokerflow.actors.pipeline import Pipeline
from brokerflow.errors import ActionFailed
from brokerflow.workflow.events import Event
from brokerflow.workflow.reference import ReferenceData

if TYPE_CHECKING:
    from brokerflow.bus.outbound import Outbound

log = logging.getLogger("brokerflow.customer")

PRUNE_AT = 4096
FIELD_OF = {"customer.set_risk_level": "risk_level", "customer.set_status": "status"}


class CustomerRecords(Protocol):
    """``store.reference`` of the storage package, as customer actions write it."""

    def upsert_many(self, kind: str, records: Iterable[dict]) -> list[dict]: ...


class CustomerActor(ActionActor):
    kind = "customer"

    def __init__(self, stats: StatsRegistry, pipeline: Pipeline, now_ms: Callable[[], int],
                 refs: ReferenceData, reference_repo: CustomerRecords, outbound: Outbound,
                 echo: Callable[[list[Event]], None]) -> None:
        super().__init__("customer", stats, pipeline, now_ms)
        self.refs, self.repo, self.outbound, self.echo = refs, reference_repo, outbound, echo
        # Values written but not yet in the replica, keyed by customer: (the replica record they
        # were written over, the values). Once the router replaces that record (our echo, or a
        # newer push) the replica is the truth again and the entry is dropped.
        self.known: dict[int, tuple[Mapping[str, Any] | None, dict[str, Any]]] = {}
        self.changes: list[tuple[RunJob, int, dict[str, Any]]] = []
        self._prune_at = PRUNE_AT

    def current(self, customer_id: int) -> tuple[Mapping[str, Any] | None, dict[str, Any]]:
        """The replica's record and the customer as this actor knows it (its own writes on top)."""
        record, written = self._written(customer_id)
        return record, {**(record or {}), **(written or {})}

    def _written(self, customer_id: int) -> tuple[Mapping[str, Any] | None, dict[str, Any] | None]:
        """The replica's record and this actor's writes over it (None once the replica moved on)."""
        record = self.refs.customers.get(customer_id)
        entry = self.known.get(customer_id)
        if entry is None:
            return record, None
        if entry[0] is not record:
            del self.known[customer_id]
            return record, None
        return record, entry[1]

    def perform(self, job: RunJob, params: Mapping[str, Any]) -> dict[str, Any]:
        action_type = job.next_action["type"]
        field = FIELD_OF[action_type]
        value = params.get(field)
        customer_id = job.context.get("_customer_id")
        if customer_id is None:
            raise ActionFailed(f"{action_type} needs a linked customer; this event has none")
        # Most actions set what the customer already has: compare in place, copy nothing.
        record, written = self._written(customer_id)
        if record is None:
            raise ActionFailed(f"{action_type}: customer {customer_id} is not known")
        current = written[field] if written is not None and field in written else record.get(field)
        if current == value:
            return {"changed": False}
        if written is None:
            self.known[customer_id] = (record, {field: value})
        else:
            written[field] = value
        self.changes.append((job, customer_id, {field: value}))
        return {"changed": True}

    def commit(self) -> None:
        if not self.changes:
            return
        changes, self.changes = self.changes, []
        merged: dict[int, dict[str, Any]] = {}
        for _, customer_id, change in changes:
            merged.setdefault(customer_id, {"id": customer_id}).update(change)
        try:  # one transaction: all of the batch's changes are stored, or none
            stored = {record["id"]: record for record in self.repo.upsert_many("customer", list(merged.values()))}
        except Exception:
            for customer_id in merged:
                self.known.pop(customer_id, None)  # not written: the replica stays the truth
            raise
        now = self.now_ms()
        echoes = [Event("customer.push", "EV_RECORD_UPDATE", stored[customer_id], source="brokerflow",
                        id=f"run:{job.run_id}:{job.next_index}", ts_ms=now, received_ms=now,
                        depth=job.depth + 1, extra={"internal": True, "changes": change})
                  for job, customer_id, change in changes]
        # The echo goes to the router before the change goes out, so a CRM's echo of it
        # (caused by customer.changed) always finds the router knowing the change's depth.
        try:
            self.echo(echoes)
        except Exception:  # noqa: BLE001 - stored already; only the customer.updated rules miss it
            log.exception("customer: %d change(s) stored but not echoed to the router", len(echoes))
        self.outbound.send_many("customer.changed", [
            {"customer_id": customer_id, "changes": change, "rule_id": job.rule_id, "run_id": job.run_id}
            for job, customer_id, change in changes])
        self._prune()

    def _prune(self) -> None:
        """Forget writes the replica has caught up with (amortized: only as the table doubles)."""
        if len(self.known) < self._prune_at:
            return
        customers = self.refs.customers
        self.known = {cid: entry for cid, entry in self.known.items() if customers.get(cid) is entry[0]}
        self._prune_at = max(PRUNE_AT, 2 * len(self.known))
