"""The modes actor: manual execution, sink requests and mail events become runs.

None of these waits: each starts its runs through the same pipeline as the event rules and,
when a caller waits (exec, a synchronous sink), completes the caller's Future from the runs'
own reply Futures once the run log has them. Rules of the automation triggers are kept in
``ModeRules``, one rule set across brands (sink and e-mail rules of every brand may answer).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import Candidate, ExecRequest, MailEvent, RunJob, SinkRequest
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.rules import RunIds, start_job
from brokerflow.errors import NotFound
from brokerflow.workflow.catalog import MODE_TRIGGERS
from brokerflow.workflow.isotime import iso_ms
from brokerflow.workflow.modes.contexts import email_context, manual_context, sink_response, trace
from brokerflow.workflow.modes.sinks import request_context
from brokerflow.workflow.rules.ruleset import CompiledRule, RuleSet

log = logging.getLogger("brokerflow.modes")

ANY_BRAND = object()


class ModeRules:
    """The active rules of the automation triggers; replaced whole on every rule change."""

    def __init__(self) -> None:
        self.ruleset = RuleSet.from_rules([])

    def reload(self, rules: Iterable[Mapping[str, Any]]) -> None:
        self.ruleset = RuleSet.from_rules([r for r in rules if r.get("trigger") in MODE_TRIGGERS])

    def for_trigger(self, trigger: str, brand: Any = ANY_BRAND) -> tuple[CompiledRule, ...]:
        rules = self.ruleset.for_trigger(trigger)
        return rules if brand is ANY_BRAND else tuple(r for r in rules if r.brand == brand)


def new_job(rule: CompiledRule, trigger: str, event_id: str, ctx: Mapping[str, Any], run_id: int,
            now_ms: int, depth: int = 0, reply: Future | None = None, status: str = "running",
            error: str | None = None) -> RunJob:
    job = start_job(rule, Candidate(trigger, event_id, ctx, depth), run_id, now_ms, status, error)
    return replace(job, reply=reply) if reply is not None else job


def gather(futures: list[Future]) -> Future:
    """A Future of every result, in order, once all are done; the first failure fails it."""
    out: Future = Future()
    results: list[Any] = [None] * len(futures)
    left = [len(futures)]
    lock = threading.Lock()

    def done(index: int, fut: Future) -> None:
        try:
            results[index] = fut.result()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter
            if not out.done():
                out.set_exception(exc)
            return
        with lock:
            left[0] -= 1
            finished = left[0] == 0
        if finished and not out.done():
            out.set_result(results)

    if not futures:
        out.set_result([])
    for index, fut in enumerate(futures):
        fut.add_done_callback(lambda f, i=index: done(i, f))
    return out


def with_iso(run: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(run)
    for name in ("started_at", "finished_at"):
        if isinstance(out.get(name), int):
            out[name] = iso_ms(out[name])
    return out


def _complete(target: Future, source: Future, make: Callable[[Any], Any]) -> None:
    def done(fut: Future) -> None:
        try:
            target.set_result(make(fut.result()))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter
            target.set_exception(exc)

    source.add_done_callback(done)


class ModesActor(SafeActor):
    kind = "modes"

    def __init__(self, stats: StatsRegistry, pipeline: Pipeline, rules: ModeRules, run_ids: RunIds,
                 now_ms: Callable[[], int], depth_limit: int) -> None:
        super().__init__("modes", stats)
        self.pipeline, self.rules, self.run_ids, self.now_ms = pipeline, rules, run_ids, now_ms
        self.depth_limit = depth_limit
        self.handlers = {ExecRequest: self.on_exec, SinkRequest: self.on_sink, MailEvent: self.on_mail}

    def on_exec(self, message: ExecRequest) -> None:
        rule = CompiledRule.compile(message.rule)
        ctx = manual_context(rule.brand, message.input, message.caller)
        ran: Future = Future()
        holds = rule.predicate(ctx)
        job = new_job(rule, "manual", f"exec:{message.caller}", ctx, self.run_ids.next(), self.now_ms(),
                      reply=ran, status="running" if holds else "skipped",
                      error=None if holds else "conditions do not hold")
        conditions = message.rule.get("conditions") or []
        _complete(message.reply, ran, lambda run: {"run": with_iso(run), "trace": trace(conditions, ctx, run)})
        self.pipeline.dispatch([job])

    def on_sink(self, message: SinkRequest) -> None:
        base = request_context(message.request)
        route = message.request.get("route")
        jobs = []
        for rule in self.rules.for_trigger("sink.request"):
            ctx = {**base, "brand": rule.brand}
            if rule.predicate(ctx):
                jobs.append(new_job(rule, "sink.request", f"sink:{route}", ctx, self.run_ids.next(),
                                    self.now_ms(), reply=Future() if message.wait else None))
        if not jobs:
            message.reply.set_exception(NotFound(f"no active sink.request rule handles route {route!r}"))
            return
        if message.wait:
            _complete(message.reply, gather([job.reply for job in jobs]), sink_response)
        else:
            message.reply.set_result({"status": 202, "headers": {}, "body": ""})
        self.pipeline.dispatch(jobs)

    def on_mail(self, message: MailEvent) -> None:
        if message.depth > self.depth_limit:
            log.warning("loop bound: %s at causal depth %d > %d; its rules do not run",
                        message.trigger, message.depth, self.depth_limit)
            return
        brand = ANY_BRAND if message.brand is None else message.brand
        event_id = f"email:{message.mail.get('message_id') or message.mail.get('to')}"
        jobs = []
        for rule in self.rules.for_trigger(message.trigger, brand):
            ctx = email_context(message.mail, rule.brand)
            if rule.predicate(ctx):
                jobs.append(new_job(rule, message.trigger, event_id, ctx, self.run_ids.next(), self.now_ms(),
                                    depth=message.depth))
        if jobs:
            self.pipeline.dispatch(jobs)
