"""The router: the one writer of the reference replica and the fan-out point of every event.

For each batch from the ingress it applies reference pushes (so a later event of the same
publisher sees them), maps events to triggers, resolves the brand, builds the evaluation
context once, and tells each brand's rule actor one ``Evaluate`` carrying all of its events.

Under ``serve --shards`` (docs/scaling.md) each process owns some customer partitions
(``Ownership``). Every process applies every reference push to its replica (each needs it to
compute keys and build contexts); only the owner of an event's partition stores its reference
record, runs its rules and updates KYC. An event owned elsewhere is settled as done at once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import pykka

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import (
    Candidate,
    ChangeOwnership,
    Evaluate,
    EventBatch,
    KycStepUpdate,
    ReferenceUpdate,
    ReloadRules,
    ReloadState,
)
from brokerflow.bus.completion import Completion
from brokerflow.workflow.cluster import Skips
from brokerflow.workflow.context import routed_context
from brokerflow.workflow.events import REFERENCE_TOPICS, Event
from brokerflow.workflow.partitions import partition_key, partition_of
from brokerflow.workflow.reference import ReferenceData
from brokerflow.workflow.rules.statekeys import StateKeys
from brokerflow.workflow.triggers import map_trigger

if TYPE_CHECKING:
    from brokerflow.bus.ingress import Handoff

log = logging.getLogger("brokerflow.router")

ECHO_WINDOW_MS = 60_000
ECHO_CUSTOMERS = 100_000
_LOGGED_FAILURES = 3  # unstorable records logged one by one per batch; the rest as a count


def is_internal(event: Event) -> bool:
    """An echo of our own change (``actors.customer``): already stored, never persisted again."""
    return bool(event.extra.get("internal"))


class EchoMemory:
    """Changes our actions made, so the CRM's echo of one is known for what it is.

    A customer change goes out as ``customer.changed``; a CRM that applies it pushes the
    customer back on the bus as a plain depth-0 ``customer.push``. Left at depth 0, that echo
    would start the causal chain again and a rule pair that flips a field would never stop.
    So each internal echo leaves ``(changes, depth)`` here, and the first bus push of that
    customer within ``ECHO_WINDOW_MS`` that carries the same values takes that depth (and
    uses the entry up). Bounded: at most ``ECHO_CUSTOMERS`` customers, oldest forgotten.
    """

    def __init__(self, window_ms: int = ECHO_WINDOW_MS, customers: int = ECHO_CUSTOMERS) -> None:
        self.window_ms, self.customers = window_ms, customers
        self._changes: OrderedDict[Any, list[tuple[Mapping[str, Any], int, int]]] = OrderedDict()

    def remember(self, event: Event) -> None:
        changes = event.extra.get("changes")
        customer_id = event.record.get("id")
        if not changes or customer_id is None:
            return
        entries = self._changes.pop(customer_id, [])
        entries.append((dict(changes), event.depth, event.received_ms + self.window_ms))
        self._changes[customer_id] = entries[-16:]
        while len(self._changes) > self.customers:
            self._changes.popitem(last=False)

    def depth_of(self, event: Event) -> int | None:
        """The causal depth of a bus push that echoes one of our changes, else None."""
        entries = self._changes.get(event.record.get("id"))
        if not entries:
            return None
        now, record = event.received_ms, event.record
        entries[:] = [entry for entry in entries if entry[2] >= now]
        for index, (changes, depth, _expires) in enumerate(entries):
            if all(key in record and record[key] == value for key, value in changes.items()):
                del entries[index]
                return depth
        return None


class RouterCounters:
    """Events the router saw but ran no rules for, by reason (part of the bus stats)."""

    def __init__(self, sharded: bool = False) -> None:
        self.sharded = sharded  # one shard of several: ``not_owned`` is part of the snapshot
        self.skipped_no_brand = 0
        self.loops_stopped = 0
        self.no_trigger = 0  # events that map to no rule trigger (reference-only pushes, KYC statuses ignored)
        self.reference_unstored = 0  # reference records storage refused (the replica has them)
        self.not_owned = 0  # events of customers another shard owns (applied to the replica only)

    def snapshot(self) -> dict[str, int]:
        counts = {"skipped_no_brand": self.skipped_no_brand, "loops_stopped": self.loops_stopped,
                  "no_trigger": self.no_trigger, "reference_unstored": self.reference_unstored}
        if self.sharded:
            counts["not_owned"] = self.not_owned
        return counts


class Ownership:
    """Which customer partitions this process owns; ``Ownership.all()`` in a single process.

    Shared reference data (groups, managers, rates: no customer) is stored by the owner of
    partition 0, so exactly one process writes each record.

    Under ``serve --cluster`` the set changes at runtime (``set``): the owned set, whether it
    is everything and the takeover ``Skips`` are one tuple swapped at once, so a reader on
    another thread sees the old state or the new one, never a mix.
    """

    def __init__(self, partitions: int, owned: tuple[int, ...] | frozenset[int]) -> None:
        self.partitions = partitions
        self._state: tuple[frozenset[int], bool, Skips] = (frozenset(), False, Skips())
        self.set(owned)

    @classmethod
    def all(cls, partitions: int = 1) -> Ownership:
        return cls(partitions, tuple(range(partitions)))

    @property
    def owned(self) -> frozenset[int]:
        return self._state[0]

    @property
    def everything(self) -> bool:
        return self._state[1]

    @property
    def skips(self) -> Skips:
        return self._state[2]

    def set(self, owned: Iterable[int], skips: Skips | None = None) -> None:
        """From now on own ``owned`` (and skip what ``skips`` says a takeover's replay must)."""
        owned = frozenset(owned)
        self._state = (owned, owned == frozenset(range(self.partitions)),
                       self._state[2] if skips is None else skips)

    def owns(self, event: Event, refs: ReferenceData) -> bool:
        """Does this process own ``event``? Asked after the batch's earlier pushes are applied."""
        owned, everything, skips = self._state
        if everything and not skips:
            return True
        key = partition_key(event.topic, event.record, refs.accounts)
        partition = 0 if key is None else partition_of(key, self.partitions)
        if partition not in owned:
            return False
        if skips:
            source, seq = getattr(event, "source", None), getattr(event, "seq", None)
            if source is not None and seq is not None and skips.skip(source, seq, partition):
                return False  # done already: here before a rewind, or by the partition's last owner
        return True


class ReferenceRecords(Protocol):
    """``store.reference`` of the storage package: where the replica's records are kept."""

    def upsert_many(self, kind: str, records: Iterable[dict]) -> list[dict]: ...

    def upsert_each(self, kind: str, records: Iterable[dict]) -> list[tuple[int, Exception]]: ...

    def delete(self, kind: str, key: object) -> bool: ...


class RouterActor(SafeActor):
    kind = "router"

    def __init__(self, stats: StatsRegistry, refs: ReferenceData, reference_repo: ReferenceRecords,
                 brand_actor_factory: Callable[[str], pykka.ActorRef], kyc_ref: pykka.ActorRef,
                 counters: RouterCounters, depth_limit: int, handoff: Handoff | None = None,
                 completion: Completion | None = None, history: Any = None,
                 ownership: Ownership | None = None) -> None:
        super().__init__("router", stats)
        self.history = history  # actors.history.EventHistory: handed every batch taken (backtests); None: off
        self._owned_events: list[Event] = []  # of the batch being routed, those owned here (for the history)
        self.ownership = ownership or Ownership.all()
        self.handoff = handoff  # bus.ingress.Handoff: told what this mailbox gave up (the ingress's ceiling)
        self.refs, self.reference_repo = refs, reference_repo
        self.brand_actor_factory, self.kyc_ref = brand_actor_factory, kyc_ref
        self.counters, self.depth_limit = counters, depth_limit
        self.completion = completion  # replay-served events: routed-and-done is settled here
        self.brand_actors: dict[str, pykka.ActorRef] = {}
        self.echoes = EchoMemory()
        self.handlers = {EventBatch: self.on_events, ReferenceUpdate: self.on_reference,
                         ReloadRules: self.on_reload, ChangeOwnership: self.on_ownership}

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

    def on_ownership(self, message: ChangeOwnership) -> None:
        """``serve --cluster`` gained partitions: from this point of the mailbox on, they are ours.

        Each brand's rule actor is told to reload the gained partitions' rule state before the
        ``Evaluate`` of any later batch (its mailbox is FIFO): their cooldowns and windows are the
        last owner's, as stored, when their first event here is evaluated.
        """
        gained = frozenset(message.owned) - self.ownership.owned
        self.ownership.set(message.owned, message.skips)
        if gained and self.brand_actors:
            # One copy of the replica's login -> customer links, read by every rule actor: the
            # replica itself is this thread's alone.
            links = {login: account.get("customer_id") for login, account in self.refs.accounts.items()}
            for ref in self.brand_actors.values():
                ref.tell(ReloadState(StateKeys(gained, self.ownership.partitions, links)))
        if message.reply is not None and not message.reply.done():
            message.reply.set_result(True)

    def on_stop(self) -> None:
        for ref in self.brand_actors.values():
            ref.stop(block=True, timeout=5)

    # -- reference data ----------------------------------------------------------------------
    def on_reference(self, message: ReferenceUpdate) -> None:
        if message.removed:
            self.refs.remove(message.kind, self.refs.key_of(message.kind, message.record))
        else:
            self.refs.apply(message.kind, dict(message.record))
        if message.reply is not None and not message.reply.done():
            message.reply.set_result(True)

    def _apply_reference(self, event: Event, persist: dict[str, list[dict]] | None) -> None:
        """Into the replica; into ``persist`` (to be stored) unless None: another shard stores it."""
        kind = REFERENCE_TOPICS[event.topic]
        if event.event == "EV_RECORD_DELETE":
            return  # removed after its rules ran: account:deleted rules still see the account
        merged = self.refs.apply(kind, event.record)
        if persist is not None and not is_internal(event):  # echoes of our own changes are already stored
            persist[kind].append(merged)

    def _remove_reference(self, event: Event, owned: bool = True) -> None:
        kind = REFERENCE_TOPICS[event.topic]
        key = self.refs.key_of(kind, event.record)
        self.refs.remove(kind, key)
        if owned and not is_internal(event):
            self.reference_repo.delete(kind, key)

    # -- events ------------------------------------------------------------------------------
    def on_events(self, message: EventBatch) -> None:
        if self.handoff is not None:
            self.handoff.taken_by_router(len(message.events))
        persist: dict[str, list[dict]] = defaultdict(list)
        per_brand: dict[str, list[Candidate]] = defaultdict(list)
        settled: list[tuple[tuple[str, int] | None, int]] = []
        for event in message.events:
            routed = False
            try:
                routed = self._route(event if event.topic != "customer.push" else self._causal(event), persist,
                                     per_brand)
            except Exception:  # noqa: BLE001 - one bad event must not cost the batch
                self.cell.failed += 1
                log.exception("router failed on %s event %s", getattr(event, "topic", None),
                              getattr(event, "key", None), extra={"event_id": getattr(event, "key", None)})
            if not routed and self.completion is not None:
                settled.append((_ticket(event), -1))
        self._persist(persist)
        if settled and self.completion is not None:
            self.completion.settle(settled)  # after the batch's reference records are stored
        if self.history is not None:
            # One process keeps every event; a shard or cluster member only those it owns, so the
            # shared history holds each event once (and a takeover's replay adds nothing twice).
            self.history.add(message.events if self.ownership.everything and not self.ownership.skips
                             else self._owned_events)
        self._owned_events = []
        for brand, items in per_brand.items():
            ref = self.brand_actors.get(brand)
            if ref is not None:
                ref.tell(Evaluate(tuple(items)))

    def _persist(self, persist: dict[str, list[dict]]) -> None:
        """Store the batch's reference pushes; a failure is logged, the events still run.

        A batch storage refuses is stored again record by record, so one record it cannot take
        (a login past BIGINT, a value JSON cannot encode) costs only itself: that one is
        counted (``reference_unstored``) and logged by its shape, never its contents.
        """
        for kind, records in persist.items():
            try:
                self.reference_repo.upsert_many(kind, records)
            except Exception as exc:  # noqa: BLE001 - the replica has them; storage catches up on the next push
                log.warning("router could not store %d %s record(s) at once (%s); storing them one by one",
                            len(records), kind, type(exc).__name__)
                self._persist_each(kind, records)

    def _persist_each(self, kind: str, records: list[dict]) -> None:
        try:
            failures = self.reference_repo.upsert_each(kind, records)
        except Exception as exc:  # noqa: BLE001 - the replica has them; storage catches up on the next push
            failures = [(index, exc) for index in range(len(records))]
        if not failures:
            return
        self.cell.failed += len(failures)
        self.counters.reference_unstored += len(failures)
        for index, exc in failures[:_LOGGED_FAILURES]:
            record = records[index]
            log.error("router could not store a %s record (%s; key of type %s, %d fields); the replica has it",
                      kind, type(exc).__name__, _key_types(kind, record), len(record))
        if len(failures) > _LOGGED_FAILURES:
            log.error("router could not store %d more %s record(s)", len(failures) - _LOGGED_FAILURES, kind)

    def _causal(self, event: Event) -> Event:
        """A ``customer.push`` at its causal depth: internal echoes carry it, CRM echoes are recognised.

        Only customer pushes come here; ``on_events`` tests the topic before the call.
        """
        if is_internal(event):
            self.echoes.remember(event)
            return event
        depth = self.echoes.depth_of(event)
        if depth is None or depth <= event.depth:
            return event
        log.debug("customer.push %s echoes our change: causal depth %d", event.key, depth)
        return replace(event, depth=depth)

    def _route(self, event: Event, persist: dict[str, list[dict]],
               per_brand: dict[str, list[Candidate]]) -> bool:
        """Route one event; True when a rule actor now holds it (and settles it)."""
        if not self.ownership.owns(event, self.refs):
            return self._not_owned(event)
        if self.history is not None:
            self._owned_events.append(event)
        if event.topic in REFERENCE_TOPICS:
            self._apply_reference(event, persist)
        trigger = map_trigger(event)
        if trigger is None:
            self.counters.no_trigger += 1
            if event.event == "EV_RECORD_DELETE" and event.topic in REFERENCE_TOPICS:
                self._remove_reference(event)
            return False
        if event.depth > self.depth_limit:
            self.counters.loops_stopped += 1
            log.warning("loop bound: %s event %s at causal depth %d > %d; its rules do not run",
                        trigger, event.key, event.depth, self.depth_limit, extra={"event_id": event.key})
            return False
        brand, context = routed_context(trigger, event, self.refs)
        if event.topic == "kyc.step.push":  # its triggers are the kyc.step.* ones
            self._kyc_update(event, brand)
        routed = context is not None
        if context is None:
            self.counters.skipped_no_brand += 1
            # Counted (skipped_no_brand, a metric); at INFO: an event ahead of its account is no fault of ours.
            log.info("no brand resolved for %s event %s: workflow skipped", trigger, event.key,
                     extra={"event_id": event.key})
        else:
            ticket = _ticket(event)
            if ticket is not None:
                context["_ticket"] = ticket
            per_brand[brand].append(Candidate(trigger, context["_event_id"], context, event.depth,
                                              event.ts_ms or event.received_ms))
        if event.event == "EV_RECORD_DELETE" and event.topic in REFERENCE_TOPICS:
            self._remove_reference(event)
        return routed

    def _not_owned(self, event: Event) -> bool:
        """Another shard owns it: the replica learns its reference record; nothing runs here."""
        self.counters.not_owned += 1
        if event.topic in REFERENCE_TOPICS:
            if event.event == "EV_RECORD_DELETE":
                self._remove_reference(event, owned=False)
            else:
                self._apply_reference(event, None)
        return False

    def _kyc_update(self, event: Event, brand: str | None) -> None:
        record = event.record
        ticket = _ticket(event)
        if ticket is not None and self.completion is not None:
            self.completion.settle([(ticket, 1)])  # the KYC actor settles it once the profile is stored
        self.kyc_ref.tell(KycStepUpdate(record["customer_id"], brand, record["step_code"],
                                        record.get("level"), record["status"], ticket))


def _key_types(kind: str, record: Mapping[str, Any]) -> str:
    """The type names of a record's key fields: enough to tell a bad record by its shape in a log."""
    return "/".join(type(record.get(name)).__name__ for name in ReferenceData.key_fields(kind))


def _ticket(event: Event) -> tuple[str, int] | None:
    """The event's (source, seq), by which a replay-served source's events are settled."""
    source, seq = getattr(event, "source", None), getattr(event, "seq", None)
    return (source, seq) if source is not None and seq is not None else None
