"""``email.send`` through the SMTP relay, on a small pool so a slow relay holds up nothing else.

A sent mail fires the ``email.sent`` (onSend) rules of the sending run's brand, one causal
level deeper than that run, so a rule that mails on ``email.sent`` stops at the loop bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import EmailDone, JobBatch, RunJob
from brokerflow.actors.pipeline import Pipeline
from brokerflow.bus.smtp import Mail
from brokerflow.errors import BrokerflowError
from brokerflow.workflow.templates import render

if TYPE_CHECKING:
    from brokerflow.bus.smtp import SmtpRelay

log = logging.getLogger("brokerflow.email")


def build_mail(job: RunJob, params: Mapping[str, Any], sender: str) -> Mail:
    return Mail(sender=sender, to=render(str(params.get("to") or ""), job.context),
                subject=render(str(params.get("subject") or ""), job.context),
                body=render(str(params.get("body") or ""), job.context))


class EmailActor(SafeActor):
    kind = "email"

    def __init__(self, stats: StatsRegistry, pipeline: Pipeline, relay: SmtpRelay | None, sender: str,
                 on_sent: Callable[[Mapping[str, Any], RunJob], None], workers: int = 4) -> None:
        super().__init__("email", stats)
        self.pipeline, self.relay, self.sender, self.on_sent = pipeline, relay, sender, on_sent
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="email")
        self.handlers = {JobBatch: self.on_jobs, EmailDone: self.on_done}

    def on_jobs(self, message: JobBatch) -> None:
        failed = []
        for job in message.jobs:
            mail = build_mail(job, job.next_action.get("params") or {}, self.sender)
            if self.relay is None:
                failed.append(job.with_result("failed", 0.0, "no SMTP relay configured (--smtp HOST:PORT)"))
            elif not mail.to.strip():
                failed.append(job.with_result("failed", 0.0, "email.send: the recipient is empty"))
            else:
                self.cell.pending += 1
                self.pool.submit(self._send, job, mail)
        if failed:
            self.pipeline.dispatch(failed)

    def _send(self, job: RunJob, mail: Mail) -> None:
        """Runs on the pool: only talks SMTP and reports back."""
        started = time.perf_counter()
        error = None
        try:
            self.relay.send(mail)
        except BrokerflowError as exc:
            error = exc.text
        except Exception as exc:  # noqa: BLE001 - reported as the action's failure
            log.exception("email of run %s crashed", job.run_id, extra=job.log_fields())
            error = f"internal error: {type(exc).__name__}"
        done = EmailDone(job, mail.as_map(), error, (time.perf_counter() - started) * 1000.0)
        try:
            self.actor_ref.tell(done)
        except Exception:  # noqa: BLE001 - the actor stopped while the mail was sent
            log.warning("email of run %s finished after the engine stopped", job.run_id, extra=job.log_fields())

    def on_done(self, message: EmailDone) -> None:
        self.cell.pending -= 1
        job = message.job
        if message.error is not None:
            self.pipeline.dispatch([job.with_result("failed", message.ms, message.error)])
            return
        self.pipeline.dispatch([job.with_result("success", message.ms, to=message.mail["to"])])
        try:
            self.on_sent(message.mail, job)
        except Exception:  # noqa: BLE001 - the mail is sent; onSend rules are best effort
            log.exception("email.sent rules of run %s could not start", job.run_id, extra=job.log_fields())

    def on_stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
