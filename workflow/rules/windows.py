"""Windowed aggregates: ``count``/``sum``/``max`` of a trigger's events per ``by`` value, on event time.

An aggregate condition ``{"agg", "field"?, "window_s", "by", "op", "value"}`` holds when the
aggregate over this trigger's events with the same ``by`` value whose ``ts`` lies in
``(ts - window_s, ts]`` (this event included, an event exactly ``window_s`` older not) compares
as ``op``/``value`` says. Events of one (trigger, by, field) form a *stream*, shared by every
rule of the brand that aggregates it, whatever its window or ``agg``: the rule actor observes
each event once per stream, then puts each aggregate's value into the context under
``conditions.agg_slot``, where the compiled predicate reads it like any field.

Late events (an older ``ts`` than the newest seen for their key) are inserted in ``ts`` order,
so they count for every later event whose window reaches them. Entries older than the newest
``ts`` of their key minus the stream's longest window are dropped.

Each entry carries the identity of the event that made it (``Event.key``: its publisher's
``id``, else its ``(source, seq)``; None for an event with neither, which no replay can bring
back), and an event whose identity is already in its key's window is not added again: an event
replayed from the journal after a crash, restart or takeover, which this process (or, through
storage, the last one) had already counted, counts once. Its aggregates are still computed, over
the window that already holds it. The check is a set lookup per key, kept as entries leave.

Bounded: ``MAX_ENTRIES_PER_KEY`` entries per ``by`` value and ``MAX_ENTRIES_PER_STREAM`` per
stream (least recently seen ``by`` values go first); when a cap bites, the oldest entries are
dropped and a warning says which stream and how many. Pure: no clock, no storage (the rule
actor persists what ``observe`` returns and loads it back with ``load``).
"""

from __future__ import annotations

import logging
from bisect import bisect_right, insort
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from brokerflow.workflow.catalog import EVENT_TRIGGERS, field_spec
from brokerflow.workflow.rules.conditions import MAX_GROUP_DEPTH, agg_slot, group_kind, is_aggregate

if TYPE_CHECKING:
    from brokerflow.workflow.rules.validation import Validation

log = logging.getLogger("brokerflow.rules")

AGGS = ("count", "sum", "max")
AGG_OPS = ("==", "!=", ">", ">=", "<", "<=")
WINDOW_S_MAX = 31 * 24 * 3600  # 31 days: longer windows are refused when a rule is saved
MAX_ENTRIES_PER_KEY = 10_000  # events of one by value inside one stream's window
MAX_ENTRIES_PER_STREAM = 200_000  # all by values of one stream (one brand, trigger, by, field)
_NUMERIC = ("number", "integer")
_AGG_KEYS = frozenset(("agg", "field", "window_s", "by", "op", "value"))

Entry = tuple[int, Any, "str | None"]  # (ts ms, the field's value or None, the event's identity or None)


def _ts(entry: Entry) -> int:
    return entry[0]


def key_text(value: Any) -> str:
    """A ``by``/cooldown key value as text for memory and storage: ``1`` and ``"1"`` differ."""
    cls = value.__class__
    if cls is str:
        return "s:" + value
    if cls is bool:
        return "b:" + str(value)
    if cls is float and value.is_integer():
        value = int(value)
    return ("n:" if cls is int or cls is float else "r:") + repr(value)[:200]


def event_identity(event_key: str) -> str | None:
    """What a window entry knows its event by: ``Event.key`` (the publisher's ``id``, else
    ``source:seq``, what the run log records and replays keep), or None for a key made up at
    receipt (``local:``…: no replay brings such an event back, and the same text may name another)."""
    return None if event_key.startswith("local:") else event_key


class AggSpec(NamedTuple):
    slot: str  # the context key its value goes under
    agg: str
    window_ms: int


class StreamPlan(NamedTuple):
    """One stream of a trigger and the aggregates read from it."""

    name: str  # "trigger|by|field": the storage key
    by: str
    field: str | None
    retention_ms: int  # the longest window of its aggregates
    specs: tuple[AggSpec, ...]


def _aggregates_in(items: Any, depth: int = 0) -> Iterable[Mapping[str, Any]]:
    for item in items or ():
        kind = group_kind(item)
        if kind is not None and isinstance(item[kind], list) and depth < MAX_GROUP_DEPTH:
            yield from _aggregates_in(item[kind], depth + 1)
        elif is_aggregate(item):
            yield item


def stream_plans(trigger: str, rules: Iterable[Mapping[str, Any]]) -> tuple[StreamPlan, ...]:
    """The streams ``rules`` (all of ``trigger``) aggregate over, each with its distinct aggregates."""
    streams: dict[tuple[str, str | None], dict[str, AggSpec]] = {}
    for rule in rules:
        for item in _aggregates_in(rule.get("conditions")):
            window_s, by = item.get("window_s"), item.get("by")
            if not isinstance(by, str) or not isinstance(window_s, int) or not 0 < window_s <= WINDOW_S_MAX:
                continue  # validation refuses these; a stored one never holds (its slot stays unset)
            field = item.get("field") if isinstance(item.get("field"), str) else None
            slot = agg_slot(item)
            streams.setdefault((by, field), {})[slot] = AggSpec(slot, item.get("agg"), window_s * 1000)
    return tuple(
        StreamPlan(f"{trigger}|{by}|{field or ''}", by, field, max(s.window_ms for s in specs.values()),
                   tuple(specs.values()))
        for (by, field), specs in streams.items()
    )


def aggregate(entries: list[Entry], agg: str, ts: int, window_ms: int) -> Any:
    """``agg`` over the entries (sorted by ts) in ``(ts - window_ms, ts]``; None when nothing to take."""
    lo = bisect_right(entries, ts - window_ms, key=_ts)
    hi = bisect_right(entries, ts, key=_ts)
    if agg == "count":
        return hi - lo
    values = [entry[1] for entry in entries[lo:hi]]  # stored (ts, value) pairs too (dry runs)
    numbers = [v for v in values if (v.__class__ is int or v.__class__ is float) and v == v]
    if agg == "sum":
        return sum(numbers)
    if agg == "max":
        return max(numbers) if numbers else None
    return None


class _Stream:
    __slots__ = ("keys", "plan", "seen", "size")

    def __init__(self, plan: StreamPlan) -> None:
        self.plan = plan
        self.keys: OrderedDict[str, list[Entry]] = OrderedDict()
        self.seen: dict[str, set[str]] = {}  # per key: the identities of its entries
        self.size = 0


def _forget(seen: set[str], entries: list[Entry], count: int) -> None:
    """The identities of the ``count`` oldest entries leave ``seen`` (they leave the window)."""
    if seen:
        for entry in entries[:count]:
            seen.discard(entry[2])


class Windows:
    """A brand's streams in memory; ``observe`` per event, ``load`` what storage kept."""

    def __init__(self, per_key: int = MAX_ENTRIES_PER_KEY, per_stream: int = MAX_ENTRIES_PER_STREAM) -> None:
        self.per_key, self.per_stream = per_key, per_stream
        self._streams: dict[str, _Stream] = {}
        self._drops: dict[tuple[str, str], int] = {}
        self.dropped = 0

    def plan(self, plans: Iterable[StreamPlan]) -> list[str]:
        """Keep the streams of ``plans`` (new retention applied), forget others; returns the new names."""
        fresh, kept = [], {}
        for plan in plans:
            stream = self._streams.get(plan.name)
            if stream is None:
                stream = _Stream(plan)
                fresh.append(plan.name)
            stream.plan = plan
            kept[plan.name] = stream
        self._streams = kept
        return fresh

    def load(self, name: str, rows: Iterable[Sequence[Any]]) -> None:
        """Stored ``(key, ts, value, identity)`` rows of stream ``name``, oldest first (an identity
        may be None: rows stored before entries had one; ``(key, ts, value)`` rows are taken too)."""
        stream = self._streams.get(name)
        if stream is None:
            return
        for row in rows:
            self._insert(stream, row[0], row[1], row[2], row[3] if len(row) > 3 else None)

    def replace(self, name: str, selected: Callable[[str], bool], rows: Iterable[Sequence[Any]]) -> int:
        """The keys ``selected`` says of stream ``name`` become what ``rows`` (stored ``(key, ts, value,
        identity)``, oldest first) hold for them: a partition gained from another process brings its
        state. Other keys are kept as they are. Returns the entries loaded."""
        stream = self._streams.get(name)
        if stream is None:
            return 0
        for key in [key for key in stream.keys if selected(key)]:
            stream.size -= len(stream.keys.pop(key))
            stream.seen.pop(key, None)
        loaded = 0
        for row in rows:
            if selected(row[0]):
                self._insert(stream, row[0], row[1], row[2], row[3] if len(row) > 3 else None)
                loaded += 1
        return loaded

    def observe(self, plan: StreamPlan, ctx: dict[str, Any], ts: int,
                ident: str | None = None) -> tuple[str, int, Any] | None:
        """Add the event to its stream, put each aggregate's value into ``ctx``; the row to store, or None.

        An event without a ``by`` value adds nothing and its aggregates stay unset (they never hold).
        An event whose identity ``ident`` its key's window holds already (a replay) adds nothing
        either (None: nothing to store); its aggregates are those of the window that holds it.
        """
        by_value = ctx.get(plan.by)
        if by_value is None:
            return None
        stream = self._streams.get(plan.name)
        if stream is None:
            return None
        key = key_text(by_value)
        value = ctx.get(plan.field) if plan.field else None
        entries = self._insert(stream, key, ts, value, ident)
        row: tuple[str, int, Any] | None = (key, ts, value)
        if entries is None:  # a replay of an event the window holds already
            entries, row = stream.keys[key], None
        for slot, agg, window_ms in plan.specs:
            ctx[slot] = aggregate(entries, agg, ts, window_ms)
        return row

    def peek(self, plan: StreamPlan, ctx: dict[str, Any], ts: int, stored: list[Entry]) -> None:
        """``observe`` without keeping anything: ``stored`` entries plus this event (dry runs)."""
        if ctx.get(plan.by) is None:
            return
        entries = sorted([*stored, (ts, ctx.get(plan.field) if plan.field else None, None)], key=_ts)
        for slot, agg, window_ms in plan.specs:
            ctx[slot] = aggregate(entries, agg, ts, window_ms)

    def _insert(self, stream: _Stream, key: str, ts: int, value: Any, ident: str | None) -> list[Entry] | None:
        """Add one entry to ``key``'s window; its entries, oldest first, or None when ``ident`` is
        in the window already (nothing added)."""
        entries = stream.keys.get(key)
        if entries is None:
            entries = stream.keys[key] = []
            seen = stream.seen[key] = set()
        else:
            stream.keys.move_to_end(key)
            seen = stream.seen[key]
            if ident is not None and ident in seen:
                return None
        before = len(entries)
        if entries:
            horizon = entries[-1][0] - stream.plan.retention_ms
            cut = bisect_right(entries, horizon, key=_ts)
            if cut:
                if seen:  # their identities leave with them (one, mostly: inline, this is per event)
                    if cut == 1:
                        seen.discard(entries[0][2])
                    else:
                        _forget(seen, entries, cut)
                del entries[:cut]
        insort(entries, (ts, value, ident), key=_ts)
        if ident is not None:
            seen.add(ident)
        if len(entries) > self.per_key:
            over = len(entries) - self.per_key
            self._drop(stream, f"by value cap {self.per_key}", over)
            _forget(seen, entries, over)
            del entries[:over]
        stream.size += len(entries) - before
        while stream.size > self.per_stream and len(stream.keys) > 1:
            gone, oldest = stream.keys.popitem(last=False)
            del stream.seen[gone]
            stream.size -= len(oldest)
            self._drop(stream, f"stream cap {self.per_stream}", len(oldest))
        return entries

    def _drop(self, stream: _Stream, cap: str, count: int) -> None:
        """Count dropped entries; say so the first time a cap bites a stream, then every 10,000 drops."""
        self.dropped += count
        key = (stream.plan.name, cap)
        before = self._drops.get(key, 0)
        self._drops[key] = after = before + count
        if before == 0 or before // 10_000 != after // 10_000:
            log.warning("aggregate stream %s: %s reached, %d oldest entries dropped (%d so far): "
                        "aggregates over them now count less", stream.plan.name, cap, count, after)

    def entry_count(self) -> int:
        return sum(stream.size for stream in self._streams.values())


def check_aggregate(path: str, cond: Mapping[str, Any], trigger: str | None, v: Validation) -> None:
    """The aggregate's own keys (``op``/``value`` are checked as for a number field by the caller)."""
    if trigger is not None and trigger not in EVENT_TRIGGERS:
        v.error(path, f"aggregates count bus events: trigger {trigger!r} has none (event triggers only)")
    for key in sorted(str(k) for k in cond if k not in _AGG_KEYS):
        v.error(f"{path}.{key}", "unknown key of an aggregate (agg, field, window_s, by, op, value)")
    agg = cond.get("agg")
    if agg not in AGGS:
        v.error(f"{path}.agg", f"must be one of {', '.join(AGGS)}, got {agg!r}")
    window = cond.get("window_s")
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= WINDOW_S_MAX:
        v.error(f"{path}.window_s", f"must be an integer number of seconds from 1 to {WINDOW_S_MAX} (31 days), "
                                    f"got {window!r}")
    _check_agg_field(f"{path}.by", cond.get("by"), trigger, v, required=True)
    spec = _check_agg_field(f"{path}.field", cond.get("field"), trigger, v, required=agg in ("sum", "max"))
    if spec is not None and agg in ("sum", "max") and spec.type not in _NUMERIC:
        v.error(f"{path}.field", f"{agg} needs a number field; {spec.name!r} is a {spec.type} field")
    if cond.get("op") not in AGG_OPS:
        v.error(f"{path}.op", f"an aggregate compares with one of {' '.join(AGG_OPS)}, got {cond.get('op')!r}")


def _check_agg_field(path: str, name: Any, trigger: str | None, v: Validation, required: bool) -> Any:
    if name is None and not required:
        return None
    spec = field_spec(name) if isinstance(name, str) else None
    if spec is None or spec.prefix:
        v.error(path, f"must name a catalog field, got {name!r}")
        return None
    if trigger is not None and trigger not in spec.triggers:
        v.error(path, f"field {name!r} is not provided by trigger {trigger!r}; "
                      f"triggers that provide it: {', '.join(sorted(spec.triggers))}")
        return None
    return spec


__all__ = ["AGGS", "WINDOW_S_MAX", "StreamPlan", "Windows", "aggregate",
           "check_aggregate", "event_identity", "key_text", "stream_plans"]
