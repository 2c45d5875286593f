"""A draft rule evaluated against stored events (``MngBacktestWorkflowRule``), with no side effect.

Events come in event-time order, page by page, from the history the engine keeps; each is
mapped to its trigger, its brand resolved and its context built with the reference data *as it
is now* (accounts, customers, groups and rates may have changed since the event arrived). The
rule's aggregates count the events of the scanned range only (a window that reaches before it
starts empty), and its cooldown runs on event time. Nothing is written and nothing is sent:
matching only fills the counts and a sample of what the actions would have been.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from brokerflow.workflow.context import build_context
from brokerflow.workflow.events import Event
from brokerflow.workflow.reference import ReferenceData
from brokerflow.workflow.rules.conditions import compile_conditions
from brokerflow.workflow.rules.cooldown import Cooldowns, cooldown_of
from brokerflow.workflow.rules.dryrun import render_action
from brokerflow.workflow.rules.windows import Windows, stream_plans
from brokerflow.workflow.triggers import map_trigger

SAMPLE_MAX = 100
NOTE = ("evaluated with the reference data (accounts, customers, groups, rates) as it is now, not as it was "
        "when each event arrived; aggregates count only events of the range scanned; cooldowns run on event time; "
        "nothing was run or sent")


def stored_event(ts: int, body: Sequence[Any]) -> Event:
    """An event of the history as the engine parsed it then: ``body`` is the stored
    ``(topic, event, record, id)`` (``storage.repositories.history``), decoded."""
    topic, event, record, event_id = body
    return Event(topic=topic, event=event, record=dict(record or {}), id=event_id, ts_ms=ts, received_ms=ts)


class Backtest:
    """Feed events in event-time order (``feed``), then read ``result()``."""

    def __init__(self, rule: Mapping[str, Any], refs: ReferenceData) -> None:
        self.rule, self.refs = rule, refs
        self.trigger, self.brand = rule.get("trigger"), rule.get("brand")
        self.predicate = compile_conditions(rule.get("conditions") or [])
        self.plans = stream_plans(self.trigger or "", [rule])
        self.windows = Windows()
        self.windows.plan(self.plans)
        self.cooldown = cooldown_of(rule)
        self.cooldowns = Cooldowns()
        self.events = self.matched = self.suppressed = 0
        self.sample: list[dict[str, Any]] = []

    def feed(self, event: Event) -> None:
        """One stored event: counted when it is of the rule's trigger and brand, matched when the rule holds."""
        if map_trigger(event) != self.trigger or self.refs.brand_of(event) != self.brand:
            return
        self.events += 1
        ts = event.ts_ms or event.received_ms
        ctx = build_context(self.trigger, event, self.refs)
        for plan in self.plans:
            self.windows.observe(plan, ctx, ts)
        if not self.predicate(ctx):
            return
        if self.cooldown is not None and self.cooldowns.decide("draft", self.cooldown, ctx, ts) is None:
            self.suppressed += 1
            return
        self.matched += 1
        if len(self.sample) < SAMPLE_MAX:
            actions = [render_action(a, ctx) for a in self.rule.get("actions") or () if isinstance(a, Mapping)]
            self.sample.append({"event_id": event.key, "ts": ts, "actions": actions})

    def result(self) -> dict[str, Any]:
        out = {"events": self.events, "matched": self.matched, "sample": self.sample, "note": NOTE}
        if self.cooldown is not None:
            out["suppressed"] = self.suppressed
        return out
