"""Rule state between events: cooldowns and aggregate windows, kept by each brand's rule actor.

``RuleState`` is what a ``RuleActor`` holds (in memory, owned by that actor's thread): it feeds
the aggregate streams of a trigger before the rules are matched, decides cooldowns for the
rules that matched, and hands what changed to ``RuleStateWriter`` once per evaluated batch.
The writer stores changes in batches when its mailbox is empty (or every ``batch_rows``), so a
crash loses at most what was in its mailbox: the changes of the last few milliseconds of
events under normal load, never more than one batch plus what waits in its mailbox.

Partitions: state is keyed by rule and key value and lives where the event is evaluated. With
the engine partitioned by customer, a cooldown or aggregate keyed by the customer's own id
(``customer.id``, or ``trade.login``/``account.login`` of one customer's accounts) is exact;
a key spanning customers (``trade.symbol``, ``account.group``...) is counted per process.
Under ``serve --cluster`` a customer's state follows its partition: the member handing it back
flushes the writer before it frees the lease, and the member gaining it replaces the state of
those keys with what storage holds (``take_over``) before it evaluates any of their events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import Candidate, Flush, StateChanges
from brokerflow.workflow.rules.cooldown import COOLDOWN_S_MAX, MAX_COOLDOWN_KEYS, Cooldowns
from brokerflow.workflow.rules.ruleset import CompiledRule, RuleSet
from brokerflow.workflow.rules.statekeys import PARTITION_FIELDS, StateKeys
from brokerflow.workflow.rules.windows import MAX_ENTRIES_PER_STREAM, Windows, event_identity

log = logging.getLogger("brokerflow.rules")

MAX_UNSTORED = 200_000  # changes kept while storage is down; past it the oldest are given up
# Cooldowns kept in storage for all brands together (each brand keeps MAX_COOLDOWN_KEYS in memory).
STORED_COOLDOWNS_MAX = 10 * MAX_COOLDOWN_KEYS
# A takeover reads a stream or cooldowns whole when it gains at least 1/LOAD_ALL_SHARE of the partitions.
LOAD_ALL_SHARE = 8


class Suppressed:
    """Matches a cooldown kept from running, for ``MngGetStats.runs.suppressed`` (one writer each)."""

    def __init__(self) -> None:
        self.by_actor: dict[str, int] = {}

    def add(self, name: str, count: int) -> None:
        self.by_actor[name] = self.by_actor.get(name, 0) + count  # each key is written by one actor

    @property
    def total(self) -> int:
        return sum(list(self.by_actor.values()))


class RuleState:
    """One brand's cooldowns and windows, loaded from ``repo`` and saved through ``writer``."""

    def __init__(self, brand: str, repo: Any, writer: Any, suppressed: Suppressed,
                 cooldown_cap: int = MAX_COOLDOWN_KEYS, stream_cap: int = MAX_ENTRIES_PER_STREAM) -> None:
        self.brand, self.repo, self.writer, self.suppressed = brand, repo, writer, suppressed
        self.cooldowns = Cooldowns(cooldown_cap)
        self.windows = Windows(per_stream=stream_cap)
        self.stream_cap = stream_cap
        self._loaded_rules: set[Any] = set()
        self._cooldown_rows: list[tuple[Any, str, int]] = []
        self._entries: list[tuple[str, str, str, int, Any, str | None]] = []
        self._newest: dict[str, tuple[int, int]] = {}  # stream -> (newest ts, retention) this batch

    def reload(self, ruleset: RuleSet) -> None:
        """Follow the new rule set: streams it no longer reads are forgotten, new ones loaded."""
        for name in self.windows.plan(ruleset.stream_plans()):
            self.windows.load(name, self.repo.load_window(self.brand, name, self.stream_cap))
        fresh = [rule.id for rule in ruleset if rule.cooldown is not None and rule.id not in self._loaded_rules]
        if fresh:
            self.cooldowns.load(self.repo.load_cooldowns(fresh, self.cooldowns.cap))
            self._loaded_rules.update(fresh)

    def take_over(self, ruleset: RuleSet, keys: StateKeys) -> tuple[int, int]:
        """Partitions gained from another process: the state of their keys becomes what storage
        holds (the last owner's, flushed before it let go); the rest is kept. ``(cooldowns, entries)``
        loaded. Only keys of a customer field can belong to a partition: without one, nothing is read.
        Called between batches, so nothing of this actor's waits unsaved."""
        fields = {rule.id: rule.cooldown.key for rule in ruleset if rule.cooldown is not None}
        self._loaded_rules &= set(fields)  # a rule absent now is loaded whole if it comes back
        cooldowns = entries = 0
        owned_fields = {name for name in fields.values() if name in PARTITION_FIELDS}
        # A few partitions of many: storage is asked for the distinct keys, then for the rows of
        # the gained ones only (a partition of 64: a 64th of the rows). A large share (an eighth
        # or more) is read whole, as at start: cheaper than long key lists
        # (scripts/bench_rulestate_takeover.py). Either way only the gained keys are replaced.
        whole = len(keys.gained) * LOAD_ALL_SHARE >= keys.partitions
        for name in owned_fields:
            rule_ids = [rule_id for rule_id, field in fields.items() if field == name]
            if whole:
                rows = self.repo.load_cooldowns(rule_ids, self.cooldowns.cap)
            else:
                mine = [key for key in self.repo.cooldown_keys(rule_ids) if keys.selects(name, key)]
                rows = self.repo.load_cooldowns_of(rule_ids, mine, self.cooldowns.cap) if mine else []
            cooldowns += self.cooldowns.replace(
                lambda rule_id, key, name=name: fields.get(rule_id) == name and keys.selects(name, key), rows)
        for plan in ruleset.stream_plans():
            if plan.by not in PARTITION_FIELDS:
                continue
            if whole:
                rows = self.repo.load_window(self.brand, plan.name, self.stream_cap)
            else:
                mine = [key for key in self.repo.window_keys(self.brand, plan.name) if keys.selects(plan.by, key)]
                rows = self.repo.load_window_of(self.brand, plan.name, mine, self.stream_cap) if mine else []
            entries += self.windows.replace(plan.name, lambda key, by=plan.by: keys.selects(by, key), rows)
        return cooldowns, entries

    def observe(self, ruleset: RuleSet, candidate: Candidate) -> None:
        """Feed the trigger's streams with the event; its aggregate values go into its context."""
        plans = ruleset.streams_of(candidate.trigger)
        if not plans:
            return
        ts = candidate.ts_ms
        ident = event_identity(candidate.event_id)
        for plan in plans:
            row = self.windows.observe(plan, candidate.context, ts, ident)
            if row is not None:
                key, ts, value = row
                self._entries.append((self.brand, plan.name, key, ts,
                                      value if value.__class__ in (int, float) else None, ident))
                newest = self._newest.get(plan.name)
                if newest is None or ts > newest[0]:
                    self._newest[plan.name] = (ts, plan.retention_ms)

    def allow(self, rule: CompiledRule, candidate: Candidate, now_ms: int) -> bool:
        """May this match run, or does the rule's cooldown suppress it?"""
        row = self.cooldowns.decide(rule.id, rule.cooldown, candidate.context, now_ms)
        if row is None:
            return False
        self._cooldown_rows.append(row)
        return True

    def save(self) -> None:
        """Hand this batch's changes to the writer (one message, only when something changed)."""
        if not (self._cooldown_rows or self._entries):
            return
        horizons = tuple((self.brand, name, ts - retention) for name, (ts, retention) in self._newest.items())
        self.writer.tell(StateChanges(tuple(self._cooldown_rows), tuple(self._entries), horizons))
        self._cooldown_rows, self._entries, self._newest = [], [], {}


class RuleStateWriter(SafeActor):
    """Stores the rule actors' state changes in batches (``storage.repositories.rulestate``)."""

    kind = "rulestate"

    def __init__(self, stats: StatsRegistry, repo: Any, now_ms: Callable[[], int], batch_rows: int = 2000,
                 prune_every: int = 1000) -> None:
        super().__init__("rulestate", stats)
        self.repo, self.now_ms, self.batch_rows, self.prune_every = repo, now_ms, batch_rows, prune_every
        self.cooldowns: list[tuple[Any, str, int]] = []
        self.entries: list[tuple[str, str, str, int, Any, str | None]] = []
        self.horizons: dict[tuple[str, str], int] = {}
        self.writes = 0
        self.handlers = {StateChanges: self.on_changes, Flush: self.on_flush}

    def on_changes(self, message: StateChanges) -> None:
        cooldowns = [row for row in message.cooldowns if isinstance(row, tuple) and len(row) == 3]
        entries = [row for row in message.entries if isinstance(row, tuple) and len(row) == 6]
        self.cooldowns.extend(cooldowns)
        self.entries.extend(entries)
        for brand, stream, before in message.horizons:
            key = (brand, stream)
            self.horizons[key] = max(before, self.horizons.get(key, before))
        if len(self.cooldowns) + len(self.entries) >= self.batch_rows or self.inbox_empty():
            self.flush()
        bad = len(message.cooldowns) + len(message.entries) - len(cooldowns) - len(entries)
        if bad:
            raise TypeError(f"{bad} malformed state rows dropped")

    def on_flush(self, message: Flush) -> None:
        try:
            self.flush()
        except Exception as exc:
            if message.reply is not None and not message.reply.done():
                message.reply.set_exception(exc)  # the waiter learns now rather than at its timeout
            raise
        if message.reply is not None and not message.reply.done():
            message.reply.set_result(True)

    def flush(self) -> None:
        if not (self.cooldowns or self.entries or self.horizons):
            return
        horizons = [(brand, stream, before) for (brand, stream), before in self.horizons.items()]
        try:
            self.repo.write(self.cooldowns, self.entries, horizons)
        except (TypeError, ValueError):  # rows storage can never take: given up, not retried for ever
            log.error("rule state: %d cooldowns and %d window entries cannot be stored and are dropped",
                      len(self.cooldowns), len(self.entries))
            self.cooldowns, self.entries, self.horizons = [], [], {}
            raise
        except Exception:
            self._bound()
            raise  # kept for the next flush; SafeActor logs and counts it
        self.cooldowns, self.entries, self.horizons = [], [], {}
        self.writes += 1
        if self.writes % self.prune_every == 1:
            gone = self.repo.prune(self.now_ms() - COOLDOWN_S_MAX * 1000, STORED_COOLDOWNS_MAX,
                                   [(brand, stream) for brand, stream, _ in horizons], MAX_ENTRIES_PER_STREAM)
            if gone:
                log.info("rule state: %d expired cooldowns and window entries past the caps forgotten", gone)

    def _bound(self) -> None:
        for name in ("cooldowns", "entries"):
            rows = getattr(self, name)
            if len(rows) > MAX_UNSTORED:
                log.error("rule state: storage unavailable, %d %s changes given up", len(rows) - MAX_UNSTORED, name)
                setattr(self, name, rows[-MAX_UNSTORED:])

    def on_stop(self) -> None:
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - stopping goes on; the log says what was lost
            log.exception("rule state: the last %d cooldowns and %d window entries could not be stored",
                          len(self.cooldowns), len(self.entries))
