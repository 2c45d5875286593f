"""Where the engine stands in each source a replay endpoint serves (pure data, no I/O).

A replay-served source is taken in ``seq`` order. ``next_seq`` is the first seq not yet
accounted for: everything below it was taken (handed to the router), or found lost for good
(trimmed from the journal, never journaled). A live event at ``next_seq`` is taken; one below
is a duplicate; one above means events in between are missing. While the source's replay
endpoint answers, the source then *catches up*: live events at or past ``next_seq`` are held
back (dropped here: the journal has them, and the replay brings them in order), and the
ingress fetches pages from ``next_seq`` until the endpoint says nothing more is stored. So a
source's events are taken in order and nothing is held in memory, whatever the backlog.
The highest seq held back is remembered (``held_to``): a page that says "nothing more" may have
been answered before those events were journaled, so catching up goes on until it passes them
(and, should the journal still lack them, they become a hole, fetched or given up as below).

While the endpoint does not answer, live processing must not stall: a live event past a hole
is taken and the hole ``[first, last]`` is kept open, to be fetched (out of order) once the
endpoint answers again. The checkpoint never passes an open hole.

Replayed events are checked against what was asked: a page of another source or of seqs
below what was asked is the endpoint's fault (``lying``); a seq past ``next_seq`` in a page
means the journal lacks those seqs (lost for good: counted, never waited for).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Cursor", "Cursors", "LiveVerdict", "MAX_HOLES"]

MAX_HOLES = 1000  # open holes per source; past it the oldest is given up as lost (logged)

LiveVerdict = Literal["take", "duplicate", "hold"]


@dataclass
class Cursor:
    """One replay-served source: ``next_seq``, whether it is live, its open holes."""

    source: str
    next_seq: int
    live: bool = False  # False: catching up from the replay endpoint
    held_to: int = 0  # the highest live seq held back while catching up (the replay must reach it)
    holes: list[list[int]] = field(default_factory=list)  # open [first, last], ascending

    def first_open(self) -> int:
        """The lowest seq not yet accounted for: the checkpoint stays below it."""
        return self.holes[0][0] if self.holes else self.next_seq


@dataclass
class Outcome:
    """What one replayed page did: events to take (their seqs), seqs lost for good."""

    take: list[int] = field(default_factory=list)
    lost: list[tuple[int, int]] = field(default_factory=list)
    filled: int = 0  # holes closed by this page
    lying: str | None = None  # why the page was refused, if it was


class Cursors:
    """All replay-served sources of one engine process."""

    def __init__(self, resume: dict[str, int] | None = None) -> None:
        self._resume = dict(resume or {})  # source -> seq to start from (the checkpoint + 1)
        self.by_source: dict[str, Cursor] = {}

    # -- which sources are served ---------------------------------------------------------------
    def serve(self, source: str, first_seq: int, last_seq: int, live_seq: int | None = None,
              live_gaps: list[tuple[int, int]] = ()) -> Cursor:
        """A replay endpoint serves ``source`` (stored ``first_seq..last_seq``).

        A new cursor starts at the checkpoint + 1 if there is one, else after ``live_seq`` (the
        last seq this engine already took live, before the endpoint was known; the gaps it saw
        then, ``live_gaps``, become holes to fetch), else at the journal's first seq: a source
        never seen is run from the start of what is stored.
        """
        cursor = self.by_source.get(source)
        if cursor is None:
            if source in self._resume:
                start = self._resume[source]
            elif live_seq is not None:
                start = live_seq + 1
            else:
                start = first_seq
            cursor = self.by_source[source] = Cursor(source, start, live=start > last_seq)
            if source not in self._resume and live_seq is not None:
                cursor.holes = [[first, last] for first, last in sorted(live_gaps) if last < start][-MAX_HOLES:]
        return cursor

    def rewind(self, source: str, seq: int) -> tuple[int, tuple[tuple[int, int], ...]] | None:
        """Read ``source`` again from ``seq`` (``serve --cluster`` took over partitions whose
        checkpoint is below where this engine is): the cursor catches up from there.

        Returns ``(high, holes)``: seqs ``[seq, high)`` were taken before, except ``holes``
        (never taken); None when nothing at or past ``seq`` was taken yet. A source not served
        yet starts from ``seq`` at the latest once it is.
        """
        cursor = self.by_source.get(source)
        if cursor is None:
            if source not in self._resume or self._resume[source] > seq:
                self._resume[source] = seq
            return None
        high = cursor.next_seq
        if seq >= high:
            return None
        inside = tuple((max(first, seq), last) for first, last in cursor.holes if last >= seq)
        cursor.holes = [[first, min(last, seq - 1)] for first, last in cursor.holes if first < seq]
        cursor.next_seq, cursor.live = seq, False
        cursor.held_to = max(cursor.held_to, high - 1)  # the catch-up goes at least as far as before
        return high, inside

    def resume_sources(self) -> list[str]:
        """Sources with a checkpoint: served from the start, whether or not an endpoint answers."""
        return list(self._resume)

    def __contains__(self, source: object) -> bool:
        return source in self.by_source

    # -- live events ----------------------------------------------------------------------------
    def on_live(self, source: str, seq: int, endpoint_up: bool) -> LiveVerdict:
        """A live event of a served source: take it, drop it as a duplicate, or hold it back."""
        cursor = self.by_source[source]
        if seq < cursor.next_seq:
            return "take" if _close_hole(cursor, seq) else "duplicate"
        if cursor.live and seq == cursor.next_seq:
            cursor.next_seq = seq + 1
            return "take"
        if endpoint_up:
            cursor.live = False  # the replay brings it, in order
            cursor.held_to = max(cursor.held_to, seq)
            return "hold"
        if seq > cursor.next_seq:
            _open_hole(cursor, cursor.next_seq, seq - 1)
        cursor.live = True
        cursor.next_seq = seq + 1
        return "take"

    # -- replay ---------------------------------------------------------------------------------
    def wanted(self) -> list[tuple[str, int, int | None]]:
        """``(source, from_seq, to_seq)`` of what to fetch: catch-ups first, then open holes."""
        behind = [(c.source, c.next_seq, None) for c in self.by_source.values() if not c.live]
        holes = [(c.source, c.holes[0][0], c.holes[0][1]) for c in self.by_source.values()
                 if c.live and c.holes]
        return behind + holes

    def on_page(self, source: str, from_seq: int, to_seq: int | None, seqs: list[int],
                first_seq: int | None, more: bool) -> Outcome:
        """A replayed page for ``from_seq..to_seq``: which of ``seqs`` to take, what is lost.

        ``first_seq`` is the journal's first stored seq (below it: trimmed); ``more`` is False
        when the endpoint has nothing more stored up to ``to_seq``.
        """
        cursor = self.by_source.get(source)
        outcome = Outcome()
        if cursor is None:
            outcome.lying = f"a page of source {source!r}, which is not served"
            return outcome
        if _out_of_range(seqs, from_seq, to_seq):
            outcome.lying = f"seqs out of order or outside {from_seq}..{to_seq if to_seq is not None else ''}"
            return outcome
        if more and not seqs:
            outcome.lying = "an empty page with more to come"
            return outcome
        if to_seq is None:
            self._catch_up(cursor, from_seq, seqs, first_seq, more, outcome)
        else:
            self._fill(cursor, from_seq, to_seq, seqs, first_seq, more, outcome)
        return outcome

    def _catch_up(self, cursor: Cursor, from_seq: int, seqs: list[int], first_seq: int | None,
                  more: bool, outcome: Outcome) -> None:
        if cursor.live or from_seq != cursor.next_seq:
            return  # a late answer to an old request: the cursor moved on since
        expected = cursor.next_seq
        if first_seq is not None and first_seq > expected and (not seqs or seqs[0] >= first_seq):
            outcome.lost.append((expected, first_seq - 1))  # trimmed from the journal
            expected = first_seq
        for seq in seqs:
            if seq > expected:
                outcome.lost.append((expected, seq - 1))  # never journaled
            outcome.take.append(seq)
            expected = seq + 1
        cursor.next_seq = expected
        if more:
            return
        if cursor.held_to >= expected:
            if seqs:
                return  # live events past this page were held back meanwhile: ask again from here
            _hold_to_hole(cursor)  # the journal lacks what was held: fetch it as a hole, or give it up
        cursor.live, cursor.held_to = True, 0
        outcome.filled += 1  # caught up: the backlog or the live gap that started it is filled

    @staticmethod
    def _fill(cursor: Cursor, from_seq: int, to_seq: int, seqs: list[int], first_seq: int | None,
              more: bool, outcome: Outcome) -> None:
        if not cursor.holes or cursor.holes[0][0] != from_seq:
            return  # a late answer: the hole was filled or given up since
        for seq in seqs:
            if _close_hole(cursor, seq):
                outcome.take.append(seq)
        # The page covers from_seq up to its last seq (to_seq when nothing more is stored): what
        # is still open there is not in the journal, trimmed or never journaled, so lost for good.
        covered = to_seq if not more else seqs[-1]
        outcome.lost.extend(_take_range(cursor, from_seq, covered))
        if not cursor.holes or cursor.holes[0][0] > to_seq:
            outcome.filled += 1

    def endpoint_lost(self, sources: list[str]) -> None:
        """The endpoint serving ``sources`` stopped answering: catching-up sources go live again
        (their next live event opens a hole instead of waiting for the endpoint)."""
        for source in sources:
            cursor = self.by_source.get(source)
            if cursor is not None and not cursor.live:
                _hold_to_hole(cursor)  # what was held back is fetched once the endpoint answers
                cursor.live, cursor.held_to = True, 0

    def open_gaps(self) -> int:
        """Holes still open plus sources catching up: what ``gaps_open`` reports."""
        return sum(len(c.holes) + (0 if c.live else 1) for c in self.by_source.values())

    def positions(self) -> dict[str, int]:
        """Per source, the lowest seq not accounted for (the checkpoint stays below it)."""
        return {source: cursor.first_open() for source, cursor in self.by_source.items()}


def _out_of_range(seqs: list[int], from_seq: int, to_seq: int | None) -> bool:
    """Seqs not strictly ascending, or outside what was asked."""
    if not seqs:
        return False
    if seqs[0] < from_seq or (to_seq is not None and seqs[-1] > to_seq):
        return True
    return any(later <= earlier for earlier, later in zip(seqs, seqs[1:], strict=False))


def _hold_to_hole(cursor: Cursor) -> None:
    """Live events held back (dropped for the replay to bring) that it did not bring: a hole."""
    if cursor.held_to >= cursor.next_seq:
        _open_hole(cursor, cursor.next_seq, cursor.held_to)
        cursor.next_seq = cursor.held_to + 1


def _open_hole(cursor: Cursor, first: int, last: int) -> None:
    cursor.holes.append([first, last])
    if len(cursor.holes) > MAX_HOLES:
        del cursor.holes[0]


def _close_hole(cursor: Cursor, seq: int) -> bool:
    """Take ``seq`` out of an open hole; False when no hole holds it."""
    for index, (first, last) in enumerate(cursor.holes):
        if first <= seq <= last:
            rest = [[a, b] for a, b in ((first, seq - 1), (seq + 1, last)) if a <= b]
            cursor.holes[index:index + 1] = rest
            return True
        if seq < first:
            return False
    return False


def _take_range(cursor: Cursor, first: int, last: int) -> list[tuple[int, int]]:
    """Remove ``first..last`` from the open holes; the parts that were open."""
    removed, kept = [], []
    for a, b in cursor.holes:
        lo, hi = max(a, first), min(b, last)
        if lo > hi:
            kept.append([a, b])
            continue
        removed.append((lo, hi))
        kept.extend([x, y] for x, y in ((a, lo - 1), (hi + 1, b)) if x <= y)
    cursor.holes = kept
    return removed
