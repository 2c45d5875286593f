"""The router: the one writer of the reference replica and the fan-out point of every event.

For each batch from the ingress it applies reference pushes (so a later event of the same
publisher sees them), maps events to triggers, resolves the brand, builds the evaluation
context once, and tells each brand's rule actor one ``Evaluate`` carrying all of its events.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from actors.base import SafeActor, StatsRegistry
from actors.messages import Candidate, Evaluate, EventBatch, KycStepUpdate, ReferenceUpdate, ReloadRules
from workflow.context import build_context
from workflow.events import REFERENCE_TOPICS, Event
from workflow.reference import ReferenceData
from workflow.triggers import map_trigger

log = logging.getLogger("brokerflow.router")

_KEYS = {"group": "group", "account": "login", "customer": "id", "manager": "id", "rate": "currency"}


class RouterCounters:
    """Events the router saw but ran no rules for, by reason (part of the bus stats)."""

    def __init__(self) -> None:
        self.skipped_no_brand = 0
        self.loops_stopped = 0
        self.no_trigger = 0

    def snapshot(self) -> dict[str, int]:
        return {"skipped_no_brand": self.skipped_no_brand, "loops_stopped": self.loops_stopped}


class RouterActor(SafeActor):
    kind = "router"

    def __init__(self, stats: StatsRegistry, refs: ReferenceData, reference_repo: Any,
                 brand_actor_factory: Callable[[str], Any], kyc_ref: Any,
                 counters: RouterCounters, depth_limit: int) -> None:
        super().__init__("router", stats)
        self.refs, self.reference_repo = refs, reference_repo
        self.brand_actor_factory, self.kyc_ref = brand_actor_factory, kyc_ref
        self.counters, self.depth_limit = counters, depth_limit
        self.brand_actors: dict[str, Any] = {}
        self.handlers = {EventBatch: self.on_events, ReferenceUpdate: self.on_reference,
                         ReloadRules: self.on_reload}

    # -- rules -------------------------------------------------------------------------------
    def on_reload(self, message: ReloadRules) -> None:
        for brand in set(message.rules_by_brand) | set(self.brand_actors):
            rules = tuple(message.rules_by_brand.get(brand, ()))
            ref = self.brand_actors.get(brand)
            if ref is None:
                ref = self.brand_actors[brand] = self.brand_actor_factory(brand)
            ref.tell(ReloadRules({brand: rules}))
        if message.reply is not None:
            message.reply.set_result(sorted(self.brand_actors))

    def on_stop(self) -> None:
        for ref in self.brand_actors.values():
            ref.stop(block=True, timeout=5)

    # -- reference data ----------------------------------------------------------------------
    def on_reference(self, message: ReferenceUpdate) -> None:
        if message.removed:
            self.refs.remove(message.kind, self.refs.key_of(message.kind, message.record))
        else:
            self.refs.apply(message.kind, dict(message.record))

    def _apply_reference(self, event: Event, persist: dict[str, list[dict]]) -> None:
        kind = REFERENCE_TOPICS[event.topic]
        if event.event == "EV_RECORD_DELETE":
            return  # removed after its rules ran: account:deleted rules still see the account
        merged = self.refs.apply(kind, event.record)
        if event.depth == 0:  # echoes of our own changes are already stored
            persist[kind].append(merged)

    def _remove_reference(self, event: Event) -> None:
        kind = REFERENCE_TOPICS[event.topic]
        key = event.record.get(_KEYS[kind])
        self.refs.remove(kind, key)
        if event.depth == 0:
            self.reference_repo.delete(kind, key)

    # -- events ------------------------------------------------------------------------------
    def on_events(self, message: EventBatch) -> None:
        persist: dict[str, list[dict]] = defaultdict(list)
        per_brand: dict[str, list[Candidate]] = defaultdict(list)
        for event in message.events:
            try:
                self._route(event, persist, per_brand)
            except Exception:  # noqa: BLE001 - one bad event must not cost the batch
                self.cell.failed += 1
                log.exception("router failed on %s event %s", event.topic, event.key)
        for kind, records in persist.items():
            self.reference_repo.upsert_many(kind, records)
        for brand, items in per_brand.items():
            ref = self.brand_actors.get(brand)
            if ref is not None:
                ref.tell(Evaluate(tuple(items)))

    def _route(self, event: Event, persist: dict[str, list[dict]],
               per_brand: dict[str, list[Candidate]]) -> None:
        if event.topic in REFERENCE_TOPICS:
            self._apply_reference(event, persist)
        trigger = map_trigger(event)
        if trigger is None:
            if event.event == "EV_RECORD_DELETE" and event.topic in REFERENCE_TOPICS:
                self._remove_reference(event)
            return
        if event.depth > self.depth_limit:
            self.counters.loops_stopped += 1
            log.warning("loop bound: %s event %s at causal depth %d > %d; its rules do not run",
                        trigger, event.key, event.depth, self.depth_limit)
            return
        brand = self.refs.brand_of(event)
        if trigger.startswith("kyc.step."):
            self._kyc_update(event, brand)
        if brand is None:
            self.counters.skipped_no_brand += 1
            log.warning("no brand resolved for %s event %s: workflow skipped", trigger, event.key)
        else:
            context = build_context(trigger, event, self.refs)
            per_brand[brand].append(Candidate(trigger, event.key, context, event.depth))
        if event.event == "EV_RECORD_DELETE" and event.topic in REFERENCE_TOPICS:
            self._remove_reference(event)

    def _kyc_update(self, event: Event, brand: str | None) -> None:
        record = event.record
        self.kyc_ref.tell(KycStepUpdate(record["customer_id"], brand, record["step_code"],
                                        record.get("level"), record["status"]))
