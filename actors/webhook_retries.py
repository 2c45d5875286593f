"""The due-retry poller: stored webhook retries sent again when due, off the ``WebhookActor``.

``poll_once(now_ms)`` takes the retries due at ``now_ms`` (as many as it has free workers,
at most a quarter of them per host), claims them in storage and hands each to its own small
pool, which makes the attempt through the same ``Deliveries`` (same sender, same
``Idempotency-Key`` and ``webhook-id``) and dispatches the run as it goes on: on to its next
action, to the run log (parked again, or ended), never back through the webhook actor. A run
waiting for a retry thus holds no actor and no thread.

``run(stop)`` is the loop the engine runs on a thread of its own: it sleeps until the next
retry is due (at most ``IDLE_S``; a newly stored retry or a freed worker wakes it), so a due
retry is sent within milliseconds, and an idle engine asks storage once a second. Pending
retries are rows, so they survive a stop, a crash or a restart: the next engine sends them.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pykka

from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.webhook_delivery import CLAIM_MARGIN_MS, Deliveries
from brokerflow.workflow.policies.webhook_requests import MAX_TIMEOUT_MS

log = logging.getLogger("brokerflow.webhook")

IDLE_S = 1.0  # the longest sleep between two looks at storage
BUSY_S = 0.05  # the sleep when retries are due but none could be taken (all their hosts busy)
CLAIM_MS = MAX_TIMEOUT_MS + CLAIM_MARGIN_MS  # a claim outlives the longest request


def _host(retry: dict[str, Any]) -> str:
    try:
        return (urlsplit(str((retry.get("delivery") or {}).get("url", ""))).hostname or "").lower()
    except ValueError:
        return ""


class WebhookRetries:
    """Sends stored retries when they are due; ``poll_once`` is the step, ``run`` the loop."""

    def __init__(self, repo: Any, deliveries: Deliveries, pipeline: Pipeline, stats: StatsRegistry,
                 workers: int, now_ms: Callable[[], int], per_host: int | None = None,
                 on_exit: Callable[[], None] | None = None) -> None:
        self.repo, self.deliveries, self.pipeline, self.now_ms = repo, deliveries, pipeline, now_ms
        self.workers = max(1, workers)
        self.per_host = per_host or max(1, self.workers // 4)
        self.cell = stats.cell("webhook-retries", "webhook")  # pending: attempts in flight (drain waits)
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="webhook-retry")
        self.inflight: dict[str, int] = defaultdict(int)
        self.submitted: dict[Future, tuple[int, str]] = {}  # sends not finished yet: retry id, host
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = False
        self.on_exit = on_exit
        deliveries.on_scheduled = lambda _due: self.wake.set()

    # -- one step ----------------------------------------------------------------------------
    def poll_once(self, now_ms: int | None = None) -> int:
        """Claim the retries due at ``now_ms`` that free workers can take and start them; how many."""
        if self.stopping:
            return 0
        now = self.now_ms() if now_ms is None else now_ms
        with self.lock:
            free = self.workers - sum(self.inflight.values())
            busy = dict(self.inflight)
        if free <= 0:
            return 0
        chosen: list[tuple[dict[str, Any], str]] = []
        for retry in self.repo.due(now, limit=free * 4):
            host = _host(retry)
            if busy.get(host, 0) >= self.per_host:
                continue
            busy[host] = busy.get(host, 0) + 1
            chosen.append((retry, host))
            if len(chosen) >= free:
                break
        if not chosen:
            return 0
        claimed = set(self.repo.claim([retry["id"] for retry, _ in chosen], now, now + CLAIM_MS))
        started = 0
        for retry, host in chosen:
            if retry["id"] not in claimed:
                continue  # another poller took it
            with self.lock:
                self.inflight[host] += 1
                self.cell.pending += 1
            try:
                future = self.pool.submit(self._send, retry, host)
            except RuntimeError:  # the pool is shut down: the engine stops
                self._done(host)
                self.repo.release([retry["id"]])
                continue
            with self.lock:
                self.submitted[future] = (retry["id"], host)
            future.add_done_callback(self._forget)
            started += 1
        return started

    def _forget(self, future: Future) -> None:
        if future.cancelled():
            return  # close() gives its row back
        with self.lock:
            self.submitted.pop(future, None)

    def _send(self, retry: dict[str, Any], host: str) -> None:
        """On the pool: one attempt, its outcome stored, the run dispatched as it goes on."""
        try:
            job = self.deliveries.again(retry)
        except Exception:  # noqa: BLE001 - the row stays; its claim lapses and it is sent again
            log.exception("webhook retry %s (run %s) failed unexpectedly", retry.get("id"), retry.get("run_id"))
            self.cell.failed += 1
            self._done(host)
            return
        try:
            self.pipeline.dispatch([job])
        except pykka.ActorDeadError:  # the engine stopped meanwhile: the outcome is stored, the run log row is not
            log.warning("webhook retry of run %s finished after the engine stopped", retry.get("run_id"))
        except Exception:  # noqa: BLE001 - the delivery is done; only the run's logging is lost
            log.exception("webhook retry of run %s: the run could not be passed on", retry.get("run_id"))
            self.cell.failed += 1
        finally:
            self.cell.processed += 1
            self._done(host)

    def _done(self, host: str) -> None:
        with self.lock:
            self.inflight[host] -= 1
            if self.inflight[host] <= 0:
                self.inflight.pop(host, None)
            self.cell.pending = max(0, self.cell.pending - 1)
        self.wake.set()  # a worker is free

    # -- the loop ----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set() and not self.stopping:
                self.wake.clear()
                self.wake.wait(self._step())
        finally:
            if self.on_exit is not None:
                self.on_exit()

    def _step(self) -> float:
        """Poll once; how long to sleep before the next look."""
        now = self.now_ms()
        try:
            started = self.poll_once(now)
            following = self.repo.next_due(now)
        except Exception:  # noqa: BLE001 - storage may be back next time
            log.exception("webhook retries: polling storage failed")
            return IDLE_S
        if following is None:
            return IDLE_S
        wait_s = (following - now) / 1000
        if wait_s <= 0:
            return 0.0 if started else BUSY_S  # more due than taken: go on, or wait for a worker
        return min(wait_s, IDLE_S)

    def stop(self) -> None:
        """Take no more retries (those in flight finish; the engine's drain waits for them)."""
        self.stopping = True
        self.wake.set()

    def close(self) -> None:
        """Stop the pool; retries claimed but never started are given back for the next engine."""
        self.stopping = True
        self.wake.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self.lock:
            unsent = [(retry_id, host) for future, (retry_id, host) in self.submitted.items() if future.cancelled()]
            self.submitted.clear()
        for _, host in unsent:
            self._done(host)
        unsent = [retry_id for retry_id, _ in unsent]
        if unsent:
            try:
                self.repo.release(unsent)
            except Exception:  # noqa: BLE001 - their claims lapse on their own
                log.exception("webhook retries: giving back %d unsent retries failed", len(unsent))

    def in_flight(self) -> int:
        with self.lock:
            return sum(self.inflight.values())
