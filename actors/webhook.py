"""``webhook.send`` on a bounded pool, so a slow endpoint never holds up anything else.

The actor itself never waits on HTTP: it hands requests to a thread pool and continues the
job when the pool reports back (``WebhookDone``). A per-host cap keeps one hanging endpoint
from occupying the whole pool; its later requests wait in that host's queue.

The pool makes the *first* attempt of a delivery (``actors.webhook_delivery.Deliveries``);
a retryable failure is stored and the job comes back parked, so the actor is free at once:
``actors.webhook_retries`` makes the later attempts, off this actor.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import JobBatch, RunJob, WebhookDone
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.webhook_delivery import Deliveries, Delivery
from brokerflow.bus.webhook_sender import WebhookRequest

if TYPE_CHECKING:
    from brokerflow.bus.webhook_sender import WebhookSender

log = logging.getLogger("brokerflow.webhook")


def build_request(job: RunJob, params: Mapping[str, Any]) -> WebhookRequest:
    """The first attempt's request of ``job``'s next action (unsigned)."""
    return Delivery.of(job, params).request(None)


def host_of(job: RunJob) -> str:
    """The per-host queue a job waits in; an unparsable URL queues under '' (the sender refuses it)."""
    url = (job.next_action.get("params") or {}).get("url", "")
    try:
        return (urlsplit(str(url)).hostname or "").lower()
    except ValueError:
        return ""


class WebhookActor(SafeActor):
    kind = "webhook"

    def __init__(self, stats: StatsRegistry, pipeline: Pipeline, sender: WebhookSender, workers: int,
                 per_host: int | None = None, now_ms: Callable[[], int] | None = None,
                 deliveries: Deliveries | None = None) -> None:
        super().__init__("webhook", stats)
        self.pipeline, self.sender = pipeline, sender
        self.deliveries = deliveries or Deliveries(sender, now_ms=now_ms)  # without storage: no retries
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")
        self.per_host = per_host or max(1, workers // 4)
        self.inflight: dict[str, int] = defaultdict(int)
        self.waiting: dict[str, deque[RunJob]] = defaultdict(deque)
        self.handlers = {JobBatch: self.on_jobs, WebhookDone: self.on_done}
        self.outcomes = {"success": 0, "failed": 0}  # deliveries by outcome: the cell's gauges, for /metrics
        self._publish_outcomes()

    def pending(self) -> int:
        return sum(self.inflight.values()) + sum(len(q) for q in self.waiting.values())

    def on_jobs(self, message: JobBatch) -> None:
        for job in message.jobs:
            try:
                host = host_of(job)
            except Exception as exc:  # noqa: BLE001 - a broken job fails alone, the batch goes on
                self.cell.failed += 1
                log.exception("webhook: job %s cannot be sent", getattr(job, "run_id", None))
                if isinstance(job, RunJob) and job.next_action is not None:
                    self.pipeline.dispatch([job.with_result("failed", 0.0, f"internal error: {type(exc).__name__}")])
                continue
            self.waiting[host].append(job)
            self.cell.pending += 1
            self._pump(host)

    def _pump(self, host: str) -> None:
        queue = self.waiting[host]
        while queue and self.inflight[host] < self.per_host:
            job = queue.popleft()
            self.inflight[host] += 1
            self.pool.submit(self._send, job, host)
        if not queue:
            self.waiting.pop(host, None)

    def _send(self, job: RunJob, host: str) -> None:
        """Runs on the pool: never touches actor state, only reports back."""
        try:
            done = WebhookDone(job, host, True, None, None, 0.0, self.deliveries.first(job))
        except Exception as exc:  # noqa: BLE001 - reported as the action's failure
            log.exception("webhook of run %s crashed", job.run_id, extra=job.log_fields())
            done = WebhookDone(job, host, False, None, f"internal error: {type(exc).__name__}", 0.0)
        try:
            self.actor_ref.tell(done)
        except Exception:  # noqa: BLE001 - the actor stopped while the request ran
            log.warning("webhook of run %s finished after the engine stopped", job.run_id, extra=job.log_fields())

    def on_done(self, message: WebhookDone) -> None:
        if self.inflight.get(message.host, 0) <= 0:
            raise ValueError(f"webhook: a result for host {message.host!r} that has nothing in flight")
        self.inflight[message.host] -= 1
        self.cell.pending = max(0, self.cell.pending - 1)
        if self.inflight[message.host] <= 0:
            self.inflight.pop(message.host, None)
        outcome = message.outcome
        if outcome is None:
            detail = {"http_status": message.status} if message.status is not None else {}
            status = "success" if message.ok else "failed"
            outcome = message.job.with_result(status, message.ms, message.error, **detail)
        else:  # the delivery decided: success, failed, or retrying (parked)
            status = str(outcome.results[-1].get("status", "failed")) if outcome.results else "failed"
        self.outcomes[status] = self.outcomes.get(status, 0) + 1
        self._publish_outcomes()
        self.pipeline.dispatch([outcome])
        self._pump(message.host)

    def _publish_outcomes(self) -> None:
        self.cell.gauges = {f"deliveries_{outcome}": count for outcome, count in self.outcomes.items()}

    def on_stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
