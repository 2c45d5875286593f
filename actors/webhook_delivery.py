"""One ``webhook.send`` delivery across all its attempts (PROTOCOL section 10).

``Deliveries`` makes one attempt at a time, on the calling thread (a pool thread of the
``WebhookActor`` for the first attempt, of ``WebhookRetries`` for the later ones), decides
what follows from the outcome (``workflow.policies.webhook_delivery``) and stores it, and
returns the run's job as it goes on:

- **success**, or a **final** failure (another 4xx, a redirect, a refused target, a request
  that can never be sent): the webhook's result (``status``, ``http_status``, ``error``,
  ``attempts``) is appended; a success lets the run go on to its next action, a failure ends
  it (the remaining actions are skipped, as for any failed action).
- **retryable** failure with attempts left: the delivery is *stored* (``webhook_retries``: the
  request, its attempts, the job, the due time) and the job is *parked*: its status becomes
  ``retrying``, the webhook's entry ``retrying`` with the attempts so far and
  ``next_attempt_at``, the actions after it ``pending``; the run log writes it like that. No
  actor waits for the retry: ``WebhookRetries`` takes the stored row when it is due.
- **retryable** failure, attempts exhausted: the delivery becomes a **dead letter** and the
  webhook fails with its last error.

A run somebody waits on (a before-hook, a manual exec, a sink that answers with the run) is
answered with its first attempt's outcome: it is not retried and leaves no dead letter.

Every attempt carries the same ``Idempotency-Key`` and ``webhook-id`` (both the run's id and
the action's index: ``brokerflow-<run>-<index>``); a signed one a fresh ``webhook-timestamp``
and its signature. Secrets are looked up by name at each attempt, so a delivery stored before
a restart signs with the secret configured now; a name no longer configured fails it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from brokerflow.actors.messages import RunJob
from brokerflow.actors.runlog import RESUMED
from brokerflow.bus.webhook_sender import WebhookRequest, WebhookResult
from brokerflow.clock import now_ms as wall_ms
from brokerflow.errors import Conflict
from brokerflow.workflow.isotime import iso_ms
from brokerflow.workflow.policies import webhook_delivery as policy
from brokerflow.workflow.policies import webhook_requests as requests_policy
from brokerflow.workflow.templates import render

log = logging.getLogger("brokerflow.webhook")

CLAIM_MARGIN_MS = 30_000  # a claim outlives the request's own timeout by this much


class Delivery(NamedTuple):
    """A webhook request and its retry policy, as stored between attempts (plain JSON values).

    A named tuple, not a dataclass: one is made per webhook, and a frozen dataclass's
    ``__init__`` (a ``object.__setattr__`` per field) cost several times as much."""

    url: str
    method: str
    headers: dict[str, str]
    body: str | None
    timeout_ms: int
    idempotency_key: str
    webhook_id: str
    secret: str | None = None  # the name of a signing secret
    retries: int = policy.DEFAULT_RETRIES
    backoff_s: float = policy.DEFAULT_BACKOFF_S

    @classmethod
    def of(cls, job: RunJob, params: Mapping[str, Any]) -> Delivery:
        """The delivery of ``job``'s next action (its ``webhook.send`` params), texts rendered."""
        body = params.get("body")
        ticket = job.context.get("_ticket") if isinstance(job.context, dict) else None
        event = None if ticket is None else (*ticket, job.rule_id)
        key = requests_policy.idempotency_key(job.run_id, job.next_index, event)
        secret = params.get("secret")
        return cls(
            url=str(params.get("url", "")),
            method=str(params.get("method") or "POST").upper(),
            headers={str(k): str(v) for k, v in (params.get("headers") or {}).items()},
            body=render(body, job.context) if isinstance(body, str) else body,
            timeout_ms=requests_policy.clamp_timeout_ms(params.get("timeout_ms")),
            idempotency_key=key, webhook_id=key,
            secret=secret if isinstance(secret, str) and secret else None,
            retries=0 if job.reply is not None else policy.retries_of(params),
            backoff_s=policy.backoff_of(params),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        known = cls._fields
        return cls(**{k: v for k, v in data.items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()

    def request(self, signing_key: bytes | None) -> WebhookRequest:
        return WebhookRequest(url=self.url, method=self.method, headers=self.headers, body=self.body,
                              timeout_ms=self.timeout_ms, idempotency_key=self.idempotency_key,
                              webhook_id=self.webhook_id, signing_key=signing_key)


class WebhookMetrics:
    """Delivery counters for ``MngGetStats.webhooks`` (and ``/metrics`` once it exists)."""

    OUTCOMES = ("success", "failed", "dead_letter")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempts = 0
        self.retries_scheduled = 0
        self.redelivered = 0
        self.deliveries = dict.fromkeys(self.OUTCOMES, 0)

    def attempt(self) -> None:
        with self._lock:
            self.attempts += 1

    def outcome(self, outcome: str) -> None:
        with self._lock:
            self.deliveries[outcome] += 1

    def retry_scheduled(self) -> None:
        with self._lock:
            self.retries_scheduled += 1

    def redelivery(self) -> None:
        with self._lock:
            self.redelivered += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"attempts": self.attempts, "deliveries": dict(self.deliveries),
                    "retries_scheduled": self.retries_scheduled, "redelivered": self.redelivered}


def signing_keys(secrets: Mapping[str, str]) -> dict[str, bytes]:
    """Name -> HMAC key (``policy.signing_key``); ValueError naming the secret that is malformed."""
    keys = {}
    for name, secret in secrets.items():
        try:
            keys[name] = policy.signing_key(secret)
        except ValueError as exc:
            raise ValueError(f"webhook secret {name!r}: {exc}") from None
    return keys


def job_state(job: RunJob) -> dict[str, Any]:
    """What a parked job needs to continue after a restart, as JSON values (unencodable values as text)."""
    state = {"run_id": job.run_id, "rule_id": job.rule_id, "rule_version": job.rule_version, "brand": job.brand,
             "trigger": job.trigger, "event_id": job.event_id, "actions": list(job.actions),
             "context": dict(job.context), "started_ms": job.started_ms, "depth": job.depth,
             "results": list(job.results), "origin": job.origin, "extra": dict(job.extra or {})}
    return json.loads(json.dumps(state, default=str))


def job_of(state: Mapping[str, Any]) -> RunJob:
    """The job ``job_state`` stored, marked as written before (its run log row is replaced)."""
    return RunJob(run_id=state["run_id"], rule_id=state.get("rule_id"), rule_version=state.get("rule_version"),
                  brand=state.get("brand"), trigger=state.get("trigger") or "", event_id=state.get("event_id"),
                  actions=tuple(state.get("actions") or ()), context=state.get("context") or {},
                  started_ms=state.get("started_ms") or 0, depth=state.get("depth") or 0,
                  results=tuple(state.get("results") or ()), origin=state.get("origin") or "rule",
                  extra={**(state.get("extra") or {}), RESUMED: True})


class Deliveries:
    """Attempts, their outcome, and what is stored for the next one; thread-safe (no state but counters)."""

    def __init__(self, sender: Any, repo: Any = None, secrets: Mapping[str, str] | None = None,
                 now_ms: Callable[[], int] | None = None, rand: Callable[[], float] | None = None,
                 metrics: WebhookMetrics | None = None) -> None:
        self.sender, self.repo = sender, repo  # repo None: nothing is stored, so nothing is retried
        self.keys = signing_keys(secrets or {})
        self.now_ms = now_ms or wall_ms
        self.rand = rand or random.random
        self.metrics = metrics or WebhookMetrics()
        self.on_scheduled: Callable[[int], None] | None = None  # told each new due time (the poller wakes)

    # -- one attempt -------------------------------------------------------------------------
    def attempt(self, delivery: Delivery) -> tuple[WebhookResult, dict[str, Any]]:
        """Send once; the result and its ``attempts`` entry (``at``, ``ms``, ``http_status`` or ``error``)."""
        at = _iso(self.now_ms())
        if delivery.secret is not None and delivery.secret not in self.keys:
            result = WebhookResult(False, None, f"signing secret {delivery.secret!r} is not configured", 0.0,
                                   kind=policy.KIND_INVALID)
        else:
            key = self.keys.get(delivery.secret) if delivery.secret is not None else None
            result = self.sender.send(delivery.request(key))
        self.metrics.attempt()
        entry: dict[str, Any] = {"at": at, "ms": result.ms}
        if result.status is not None:
            entry["http_status"] = result.status
        else:
            entry["error"] = result.error
        return result, entry

    def _delay_ms(self, attempt: int, delivery: Delivery, result: WebhookResult) -> int:
        retry_after = None
        if policy.wants_retry_after(result.status):
            retry_after = policy.parse_retry_after(result.retry_after, self.now_ms() / 1000)
        return int(policy.retry_delay_s(attempt, delivery.backoff_s, self.rand, retry_after) * 1000)

    # -- the first attempt (WebhookActor) ----------------------------------------------------
    def first(self, job: RunJob) -> RunJob:
        """Deliver ``job``'s next action once; the job as it goes on (result appended, or parked)."""
        delivery = Delivery.of(job, job.next_action.get("params") or {})
        result, entry = self.attempt(delivery)
        attempts = [entry]
        verdict = policy.classify(result.kind, result.status)
        if verdict == policy.RETRY and delivery.retries > 0 and self.repo is not None:
            due = self.now_ms() + self._delay_ms(1, delivery, result)
            try:
                self.repo.schedule({"run_id": job.run_id, "action_index": job.next_index, "rule_id": job.rule_id,
                                    "brand": job.brand, "due_at": due, "delivery": delivery.as_dict(),
                                    "attempts": attempts, "job": job_state(job)})
            except Exception:  # noqa: BLE001 - storage down: the webhook fails now instead of never
                log.exception("webhook of run %s: its retry could not be stored; it fails now", job.run_id)
            else:
                self._scheduled(job, delivery, 1, result, due)
                return job.parked(_entry(job, "retrying", result, attempts, next_attempt_at=iso_ms(due)))
        return self._ended(job, None, delivery, verdict, result, attempts)

    # -- a later attempt (WebhookRetries) ----------------------------------------------------
    def again(self, retry: Mapping[str, Any]) -> RunJob:
        """Another attempt of a stored, claimed retry; the job as it goes on (marked resumed)."""
        delivery = Delivery.from_dict(retry["delivery"])
        job = job_of(retry["job"])
        result, entry = self.attempt(delivery)
        attempts = [*retry.get("attempts", []), entry]
        verdict = policy.classify(result.kind, result.status)
        if verdict == policy.RETRY and len(attempts) <= delivery.retries:
            due = self.now_ms() + self._delay_ms(len(attempts), delivery, result)
            self.repo.reschedule(retry["id"], due, attempts)
            self._scheduled(job, delivery, len(attempts), result, due)
            return job.parked(_entry(job, "retrying", result, attempts, next_attempt_at=iso_ms(due)))
        return self._ended(job, retry["id"], delivery, verdict, result, attempts)

    def _scheduled(self, job: RunJob, delivery: Delivery, attempt: int, result: WebhookResult, due: int) -> None:
        self.metrics.retry_scheduled()
        log.info("webhook of run %s to %s: attempt %d of %d failed (%s); next attempt at %s", job.run_id,
                 requests_policy.mask_url(delivery.url), attempt, delivery.retries + 1,
                 requests_policy.mask_text(result.error), iso_ms(due))
        if self.on_scheduled is not None:
            self.on_scheduled(due)

    def _ended(self, job: RunJob, retry_id: int | None, delivery: Delivery, verdict: str, result: WebhookResult,
               attempts: list[dict[str, Any]]) -> RunJob:
        """Success, a final failure, or exhausted: the stored retry (if any) goes, a dead letter may come."""
        outcome = "success" if verdict == policy.SUCCESS else "failed"
        if verdict == policy.RETRY and job.reply is None and self.repo is not None:
            self.repo.bury(retry_id, {"run_id": job.run_id, "action_index": len(job.results), "rule_id": job.rule_id,
                                      "brand": job.brand, "url": delivery.url, "delivery": delivery.as_dict(),
                                      "attempts": attempts, "last_error": result.error})
            outcome = "dead_letter"
            log.warning("webhook of run %s to %s: %d attempts failed, kept as a dead letter (%s)", job.run_id,
                        requests_policy.mask_url(delivery.url), len(attempts), requests_policy.mask_text(result.error))
        elif retry_id is not None:
            self.repo.finish(retry_id)
        self.metrics.outcome(outcome)
        detail: dict[str, Any] = {"http_status": result.status} if result.status is not None else {}
        return job.with_result("success" if verdict == policy.SUCCESS else "failed", result.ms, result.error,
                               **detail, attempts=attempts)

    # -- dead letters (MngRetryDeadLetter) ---------------------------------------------------
    def redeliver(self, dead: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """Send a dead letter again now (same key); gone on success, else kept with the attempt added."""
        delivery = Delivery.from_dict(dead["delivery"])
        now = self.now_ms()
        if not self.repo.claim_dead_letter(dead["id"], now, now + delivery.timeout_ms + CLAIM_MARGIN_MS):
            raise Conflict(f"dead letter {dead['id']} is being delivered already")
        try:
            result, entry = self.attempt(delivery)
        except BaseException:
            self.repo.record_redelivery(dead["id"], list(dead.get("attempts") or []), dead.get("last_error"))
            raise
        attempts = [*(dead.get("attempts") or []), entry]
        after = {**dead, "attempts": attempts, "last_error": result.error if not result.ok else dead.get("last_error")}
        if result.ok:
            self.repo.discard(dead["id"])
            self.metrics.redelivery()
            log.info("dead letter %s (run %s) delivered to %s", dead["id"], dead.get("run_id"),
                     requests_policy.mask_url(delivery.url))
            return after, "success"
        self.repo.record_redelivery(dead["id"], attempts, result.error)
        return after, "failed"


_second: tuple[int, str] = (-1, "")  # the last whole second _iso formatted, and its text


def _iso(ms: int) -> str:
    """``workflow.isotime.iso_ms`` for the attempts list, its date part reused within a second
    (``iso_ms`` builds a ``datetime`` each time: a tenth of a webhook's own CPU)."""
    global _second
    second, text = _second
    if ms // 1000 != second:
        second = ms // 1000
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    return f"{text}.{ms % 1000:03d}Z"


def _entry(job: RunJob, status: str, result: WebhookResult, attempts: list[dict[str, Any]],
           **extra: Any) -> dict[str, Any]:
    """The webhook's entry in the run's ``actions``."""
    entry: dict[str, Any] = {"type": job.next_action.get("type") if job.next_action else "webhook.send",
                             "status": status, "ms": round(result.ms, 3)}
    if result.error:
        entry["error"] = result.error
    if result.status is not None:
        entry["http_status"] = result.status
    entry["attempts"] = attempts
    entry.update(extra)
    return entry


__all__ = ["Deliveries", "Delivery", "WebhookMetrics", "job_of", "job_state"]
