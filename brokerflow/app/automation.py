"""The automation modes (before-hooks, manual exec, deferred, sinks, email) as one engine extension.

``after_actors_started`` starts the mode actors — ``inline`` and ``email`` executors, the
``modes`` actor (manual exec, sinks, mail), the ``before:N`` workers and the ``scheduler`` —
and ``after_services_built`` gives the API its handlers. ``before_stop_input`` stops the
ticker and the SMTP listener; ``after_drain`` stops the mode actors (the pipeline's executors
are stopped by the engine).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

import pykka

from brokerflow.actors.before import DEFAULT_BUDGET_MS, BeforeActor, BeforeHooks
from brokerflow.actors.email import EmailActor
from brokerflow.actors.inline import InlineActor
from brokerflow.actors.messages import BeforeRequest, ExecRequest, MailEvent, RunJob, SinkRequest, Tick
from brokerflow.actors.modes import ModeRules, ModesActor
from brokerflow.actors.scheduler import Scheduler, SchedulerActor, Ticker
from brokerflow.api.services import Services
from brokerflow.app.extension import EngineParts, Extension
from brokerflow.bus.smtp import DEFAULT_FROM, SmtpListener, SmtpRelay
from brokerflow.errors import ValidationFailed
from brokerflow.workflow.modes import sinks
from brokerflow.workflow.modes.contexts import HOOK_KEYS

log = logging.getLogger("brokerflow.automation")

BEFORE_WORKERS = 4


def _invalid(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {message}", details=[{"path": path, "message": message}])


class Automation(Extension):
    """The engine extension; once started it also offers ``tick(now_ms)`` to drive the scheduler."""

    def __init__(self, before_budget_ms: int | None = None) -> None:
        self.before_budget_ms = before_budget_ms
        self.rules = ModeRules()
        self.ticker: Ticker | None = None
        self.listener: SmtpListener | None = None
        self.refs: list[pykka.ActorRef] = []

    # -- lifecycle ----------------------------------------------------------------------------
    def after_actors_started(self, parts: EngineParts) -> None:
        settings, store, stats, pipeline = parts.settings, parts.store, parts.stats, parts.pipeline
        now_ms = parts.now_ms
        self.store, self.now_ms, self.secret = store, now_ms, parts.server_secret
        self.reload()
        run_ids = parts.run_ids
        inline = InlineActor.start(stats, pipeline, now_ms, parts.echo)
        pipeline.register("inline", inline)
        relay = SmtpRelay(settings.smtp_relay) if settings.smtp_relay else None
        sender = dict(settings.extra).get("smtp_from", DEFAULT_FROM)
        pipeline.register("email", EmailActor.start(stats, pipeline, relay, sender, self.mail_sent))
        self.modes = ModesActor.start(stats, pipeline, self.rules, run_ids, now_ms, settings.loop_depth_limit)
        budget = self.before_budget_ms or int(dict(settings.extra).get("before_budget_ms", DEFAULT_BUDGET_MS))
        hooks = BeforeHooks(self.rules, parts.refs, pipeline, run_ids, now_ms, budget)
        self.before_workers = [BeforeActor.start(i, stats, hooks) for i in range(BEFORE_WORKERS)]
        self.scheduler = SchedulerActor.start(
            stats, Scheduler(self.rules, store.schedules, store.meta, parts.refs, run_ids), pipeline)
        self.refs = [self.modes, *self.before_workers, self.scheduler]
        if settings.scheduler_interval_s > 0:
            self.ticker = Ticker(settings.scheduler_interval_s, self.scheduler, now_ms).start()
        if settings.smtp_listen:
            self.listener = SmtpListener(settings.smtp_listen, self.mail_received, settings.max_frame_bytes).start()
            log.info("SMTP listener on %s", self.listener.endpoint)

    def after_services_built(self, services: Services) -> None:
        services.rules_listeners.append(self.reload)
        services.before_handler, services.exec_handler = self.before, self.exec_rule
        services.sink_handler = self.sink

    def before_stop_input(self) -> None:
        if self.ticker is not None:
            self.ticker.stop()
        if self.listener is not None:
            self.listener.stop()

    def after_drain(self) -> None:
        for ref in self.refs:
            ref.stop(block=True, timeout=5)

    def reload(self) -> None:
        self.rules.reload(self.store.rules.list(status="active"))

    # -- the API's handlers -------------------------------------------------------------------
    def before(self, resource: str, operation: str, record: dict[str, Any], _principal: Any) -> Future:
        reply: Future = Future()
        key = f"{resource}:{record.get(HOOK_KEYS.get(resource, 'id'))}".encode()
        worker = self.before_workers[zlib.crc32(key) % len(self.before_workers)]
        worker.tell(BeforeRequest(resource, operation, dict(record), reply))
        return reply

    def exec_rule(self, rule: Mapping[str, Any], input: Any, principal: Any) -> Future:  # noqa: A002
        if rule.get("trigger") != "manual":
            raise _invalid("id", f"rule {rule.get('id')} has trigger {rule.get('trigger')!r}; only manual rules "
                                 "can be executed")
        if rule.get("status", "active") != "active":
            raise _invalid("id", f"rule {rule.get('id')} is {rule.get('status')}; only active rules run")
        if input is None:
            input = {}
        if not isinstance(input, Mapping):
            raise _invalid("input", "must be a map")
        reply: Future = Future()
        self.modes.tell(ExecRequest(dict(rule), dict(input), principal.actor, reply))
        return reply

    def sink(self, route: str, request: Mapping[str, Any]) -> Future:
        """Verify the signature (401, nothing runs), decode the body, hand the request over."""
        method = str(request.get("method") or "GET")
        query = dict(request.get("query") or {})
        sinks.verify(self.secret, method, route, query, self.now_ms())
        body = sinks.decode_body(request.get("body"), request.get("content_type"))
        view = sinks.request_view(method, route, request.get("headers") or {}, query, body)
        reply: Future = Future()
        wait = str(query.get(sinks.ASYNC_PARAM, "")).lower() not in ("1", "true", "yes")
        self.modes.tell(SinkRequest(view, reply, wait))
        return reply

    # -- mail and time ------------------------------------------------------------------------
    def mail_received(self, mail: Mapping[str, Any]) -> None:
        self.modes.tell(MailEvent("email.received", dict(mail)))

    def mail_sent(self, mail: Mapping[str, Any], job: RunJob) -> None:
        self.modes.tell(MailEvent("email.sent", dict(mail), job.brand, job.depth + 1))

    def tick(self, now_ms: int, timeout_s: float = 10.0) -> list[tuple[Any, int]]:
        """One scheduler step at ``now_ms`` (tests and tools); the ``(rule_id, due_ms)`` it fired."""
        reply: Future = Future()
        self.scheduler.tell(Tick(now_ms, reply))
        return reply.result(timeout=timeout_s)
