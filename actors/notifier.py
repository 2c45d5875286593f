"""``notify.manager``: resolve recipients with the rule engine's fallback chain, store and publish.

Most events notify someone, so the per-notification work is kept to a tuple in ``perform`` and,
per batch, one storage statement and one locked run of sends in ``commit``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from brokerflow.actors.actions import ActionActor
from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.messages import RunJob
from brokerflow.actors.pipeline import Pipeline
from brokerflow.errors import ActionFailed
from brokerflow.workflow.policies import recipients as notify
from brokerflow.workflow.reference import ReferenceData
from brokerflow.workflow.templates import render

if TYPE_CHECKING:
    from brokerflow.bus.outbound import Outbound


class NotificationRows(Protocol):
    """``store.notifications`` of the storage package: rows in its column order."""

    def add_rows(self, rows: Sequence[Sequence[object]]) -> int: ...


class NotifierActor(ActionActor):
    kind = "notifier"

    def __init__(self, stats: StatsRegistry, pipeline: Pipeline, now_ms: Callable[[], int],
                 refs: ReferenceData, notifications_repo: NotificationRows, outbound: Outbound) -> None:
        super().__init__("notifier", stats, pipeline, now_ms)
        self.refs, self.repo, self.outbound = refs, notifications_repo, outbound
        # Rows in the repository's column order: manager_id, message, rule_id, run_id, brand, created_at.
        self.buffer: list[tuple[Any, ...]] = []

    def perform(self, job: RunJob, params: Mapping[str, Any]) -> dict[str, Any]:
        context = job.context
        customer = self.refs.customers.get(context.get("_customer_id"))
        manager_id = params.get("manager_id")
        # The brand's managers are looked up only when the chain gets to the broadcast.
        recipients = notify.recipients(manager_id, customer, ()) or notify.recipients(
            manager_id, customer, self.refs.enabled_managers(job.brand) if job.brand else [])
        if not recipients:
            raise ActionFailed(f"no manager to notify: no manager_id, no customer manager and no "
                               f"enabled manager of brand {job.brand!r}")
        message = params.get("message", "")
        message = render(message if type(message) is str else str(message), context)
        now, rule_id, run_id, brand = self.now_ms(), job.rule_id, job.run_id, job.brand
        self.buffer.extend([(manager_id, message, rule_id, run_id, brand, now) for manager_id in recipients])
        return {"recipients": recipients}

    def commit(self) -> None:
        if not self.buffer:
            return
        batch, self.buffer = self.buffer, []
        self.repo.add_rows(batch)
        self.outbound.send_many("notify.manager", [
            {"manager_id": manager_id, "message": message, "rule_id": rule_id, "run_id": run_id, "brand": brand}
            for manager_id, message, rule_id, run_id, brand, _ in batch])
