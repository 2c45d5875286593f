"""De-duplication and gap detection for bus events (docs/runtime.md): pure data, no I/O.

An event is a duplicate when its ``id`` was seen recently, or when its ``(source, seq)`` is at or
below the last sequence number taken from that source. A sequence number more than one above
the last is a gap: the publisher's messages in between were lost (HWM overflow, reconnect) or
are late; the event itself is still processed and the missing range is reported.

A late event that fills a reported gap is processed (unless its ``id`` was seen): it was never
processed before, and dropping it as a duplicate would lose it for good. Only the last
``MAX_GAP_RANGES`` missing ranges per source are remembered for that; an older one's late
events count as duplicates, and so do all of them after a restart (gaps are not persisted).

A duplicate does not move a source's ``seq``, so a resent id under a jumping seq cannot hide a
gap; only a duplicate exactly one past the last seq is taken as consumed (it skips nothing,
and the next event would otherwise report a gap that never happened).

Publishers must keep their ``seq`` across restarts (or use a new ``source`` per incarnation):
a source that starts again at 1 is, by this definition, replaying old events.

Sources are bounded too: the ``max_sources`` (10,000) most recently seen are kept, and the
least recent is forgotten when a new one arrives. A forgotten source starts afresh: its next
event is new whatever its seq, and no gap is reported for it.

The ingress persists what changed in batches: ``pending()`` then ``mark_flushed()`` once the
store has it, and ``load()`` restores it after a restart. The store stamps each source with the
time it was stored and hands back the most recently stored ones, least recent first, so the
sources kept across a restart are the most recently seen too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Literal

from brokerflow.workflow.events import Event

DEFAULT_MAX_IDS = 1_000_000
DEFAULT_MAX_SOURCES = 10_000
# Reported gaps remembered per source, so their late events are still taken.
MAX_GAP_RANGES = 64

Gap = tuple[Literal["gap"], int, int]
Verdict = Literal["new", "duplicate"] | Gap


class Deduplicator:
    """Recent ids (bounded, oldest evicted), the last ``seq`` per source and its open gaps.

    The window is a set for the membership test and a deque for the eviction order: at the
    default million ids that is about 100 MB, against 140 MB for an ``OrderedDict``. The last
    seqs are a dict in the order the sources were last seen (each check re-inserts its source),
    so the least recent source is the first key.
    """

    def __init__(self, max_ids: int = DEFAULT_MAX_IDS, max_sources: int = DEFAULT_MAX_SOURCES) -> None:
        self.max_ids = max_ids
        self.max_sources = max_sources
        self._ids: set[str] = set()
        self._order: deque[str] = deque()
        self._last_seq: dict[str, int] = {}
        self._gaps: dict[str, list[tuple[int, int]]] = {}
        self._new_ids: list[str] = []
        self._changed: dict[str, int] = {}

    def check(self, event: Event) -> Verdict:
        """Classify ``event`` and, unless it is a duplicate, remember it."""
        event_id = event.id or None
        source, seq = event.source, event.seq
        if event_id is not None and event_id in self._ids:
            if source is not None and seq is not None:
                last = self._last_seq.get(source)
                if last is not None and seq == last + 1:
                    self._advance(source, seq)
            return "duplicate"
        verdict: Verdict = "new"
        if source is not None and seq is not None:
            # Popped and set again, so the dict's order stays "least recently seen first".
            last_seqs = self._last_seq
            last = last_seqs.pop(source, None)
            if last is None:
                self._forget_beyond_cap()
            elif seq <= last:
                last_seqs[source] = last
                if not self._fill(source, seq):
                    return "duplicate"
                # A late event of a reported gap: processed, and the source's seq stays put.
                if event_id is not None:
                    self._remember(event_id)
                return verdict
            elif seq > last + 1:
                verdict = ("gap", last + 1, seq - 1)
                self._open_gap(source, last + 1, seq - 1)
            last_seqs[source] = seq
            self._changed[source] = seq
        if event_id is not None:
            self._remember(event_id)
        return verdict

    def last_seq(self, source: str) -> int | None:
        return self._last_seq.get(source)

    def open_gaps(self, source: str) -> list[tuple[int, int]]:
        """The missing ranges of ``source`` still remembered (their late events would be taken)."""
        return list(self._gaps.get(source, ()))

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def pending(self) -> tuple[list[str], dict[str, int]]:
        """What changed since the last ``mark_flushed()``: new ids (oldest first), changed seqs."""
        return list(self._new_ids), dict(self._changed)

    def mark_flushed(self) -> None:
        self._new_ids.clear()
        self._changed.clear()

    def load(self, ids: Iterable[str], last_seq: Mapping[str, int]) -> None:
        """Restore persisted state; nothing loaded counts as pending.

        Both come oldest first: ``ids`` in the order they were seen, ``last_seq`` least recently
        seen source first (``store.events.load_state`` returns them so). Past ``max_sources``
        only the last ones are kept, so a restart forgets the same sources the running engine
        would have: the least recently seen, never the long-lived publishers.
        """
        for event_id in ids:
            if event_id not in self._ids:
                self._ids.add(event_id)
                self._order.append(event_id)
        self._evict()
        for source, seq in last_seq.items():
            current = self._last_seq.get(source)
            if current is None or seq > current:
                self._last_seq[source] = seq
        while len(self._last_seq) > self.max_sources:
            self._forget(next(iter(self._last_seq)))

    def _advance(self, source: str, seq: int) -> None:
        del self._last_seq[source]  # re-inserted: the order stays "least recently seen first"
        self._last_seq[source] = seq
        self._changed[source] = seq

    def _forget_beyond_cap(self) -> None:
        """Make room for one more source: forget the least recently advanced ones."""
        while len(self._last_seq) >= self.max_sources:
            self._forget(next(iter(self._last_seq)))
        # Unflushed seqs are bounded the same way, so a store that stays down cannot grow them.
        while len(self._changed) >= self.max_sources:
            del self._changed[next(iter(self._changed))]

    def _forget(self, source: str) -> None:
        del self._last_seq[source]
        self._gaps.pop(source, None)

    def _open_gap(self, source: str, first: int, last: int) -> None:
        ranges = self._gaps.setdefault(source, [])
        ranges.append((first, last))
        if len(ranges) > MAX_GAP_RANGES:
            del ranges[0]

    def _fill(self, source: str, seq: int) -> bool:
        """Take ``seq`` out of a reported gap of ``source``; False when no gap holds it."""
        ranges = self._gaps.get(source)
        if not ranges:
            return False
        for index, (first, last) in enumerate(ranges):
            if first <= seq <= last:
                rest = [part for part in ((first, seq - 1), (seq + 1, last)) if part[0] <= part[1]]
                ranges[index:index + 1] = rest
                if len(ranges) > MAX_GAP_RANGES:
                    del ranges[0]
                if not ranges:
                    del self._gaps[source]
                return True
        return False

    def _remember(self, event_id: str) -> None:
        self._ids.add(event_id)
        self._order.append(event_id)
        self._new_ids.append(event_id)
        if len(self._order) > self.max_ids:
            self._evict()
        # Unflushed ids are bounded too, so a store that stays down cannot grow memory forever.
        if len(self._new_ids) > self.max_ids:
            del self._new_ids[: len(self._new_ids) - self.max_ids]

    def _evict(self) -> None:
        while len(self._order) > self.max_ids:
            self._ids.discard(self._order.popleft())
