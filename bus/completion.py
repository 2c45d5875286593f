"""Which events of the replay-served sources are done, and the checkpoint that follows from it.

An event is *done* when everything it caused is stored: its runs logged (or, when no rule
matched, the router having routed it). The ingress ``accept``s each event it takes with one
count (the routing token); whoever holds the event next moves the count on with ``settle``:
the router gives the token back for an event that reaches no rule actor, a rule actor turns it
into one count per run it starts (``k - 1``), the KYC actor settles the step update it was
told, and the run log gives back one count per run once its batch is committed. At zero the
event is done and forgotten.

``watermarks()`` is, per source, the highest seq below which every event is done: the lowest
seq still pending, or not yet accounted for by the ingress (``positions``: the next seq to
take, or the first open hole), minus one. That is the checkpoint a restart replays after.

Thread-safe (the ingress, the router, the rule actors and the run log all call it); every call
takes a whole batch under one lock. Events of sources no replay endpoint serves (yet) are
counted too, though only served sources have a watermark: a source an endpoint starts serving
mid-stream gets no checkpoint past its events still in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

__all__ = ["Completion", "Ticket"]

Ticket = tuple[str, int]  # (source, seq)


class Completion:
    """Outstanding counts of the accepted events of replay-served sources."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, dict[int, int]] = {}
        self._positions: dict[str, int] = {}
        # Runs logged before a restart past each source's checkpoint: a replay must not run them again.
        self._ran: dict[str, set[tuple[int, int | None]]] = {}
        self._ran_upto: dict[str, int] = {}

    def remember_runs(self, source: str, runs: set[tuple[int, int | None]]) -> None:
        """``(seq, rule_id)`` of ``source``'s runs already logged past its checkpoint (at start,
        and at a ``serve --cluster`` takeover: added to what is remembered). The set is replaced
        whole, so the rule actors reading it never see it half-changed."""
        if runs:
            with self._lock:  # watermarks() forgets them under it
                self._ran[source] = self._ran.get(source, set()) | set(runs)
                self._ran_upto[source] = max(self._ran_upto.get(source, -1), max(seq for seq, _ in runs))

    def may_have_run(self, ticket: Ticket) -> bool:
        """Could a rule have run for this event before the restart? (Cheap: one dict lookup.)"""
        upto = self._ran_upto.get(ticket[0])
        return upto is not None and ticket[1] <= upto

    def ran(self, ticket: Ticket, rule_id: int | None) -> bool:
        """Was this event's run of ``rule_id`` logged before the restart?"""
        runs = self._ran.get(ticket[0])
        return runs is not None and (ticket[1], rule_id) in runs

    def accept(self, tickets: Iterable[Ticket], positions: Mapping[str, int]) -> None:
        """The ingress took these events (one count each); ``positions``: per served source,
        the lowest seq it has not accounted for yet."""
        with self._lock:
            pending = self._pending
            for source, seq in tickets:
                counts = pending.get(source)
                if counts is None:
                    counts = pending[source] = {}
                counts[seq] = counts.get(seq, 0) + 1
            self._positions.update(positions)

    def settle(self, deltas: Iterable[tuple[Ticket | None, int]]) -> None:
        """Move counts: ``+k`` work started for an event, ``-1`` a piece of it stored."""
        with self._lock:
            pending = self._pending
            for ticket, delta in deltas:
                if ticket is None:
                    continue
                counts = pending.get(ticket[0])
                if counts is None:
                    continue
                seq = ticket[1]
                count = counts.get(seq)
                if count is None:
                    continue
                count += delta
                if count > 0:
                    counts[seq] = count
                else:
                    del counts[seq]

    def watermarks(self) -> dict[str, int]:
        """Per served source, the highest seq below which every event is done.

        The runs remembered for a source are forgotten once its watermark has passed them: no
        event they could match is still to come (a later takeover remembers afresh).
        """
        with self._lock:
            marks = {}
            for source, position in self._positions.items():
                counts = self._pending.get(source)
                low = min(position, min(counts)) if counts else position
                marks[source] = low - 1
                upto = self._ran_upto.get(source)
                if upto is not None and low - 1 >= upto:
                    del self._ran_upto[source]  # may_have_run first: it is what the rule actors ask
                    self._ran.pop(source, None)
            return marks

    def positions(self) -> dict[str, int]:
        """Per served source, the lowest seq the ingress has not accounted for (a copy)."""
        with self._lock:
            return dict(self._positions)

    def done_below(self, positions: dict[str, int]) -> bool:
        """Is every event below ``positions`` (per source) done? (A member handing partitions
        over waits for this, so what it took before it let go is stored before the next owner reads.)"""
        marks = self.watermarks()
        return all(marks.get(source, position - 1) >= position - 1 for source, position in positions.items())

    def outstanding(self) -> int:
        """Events accepted and not yet done (a gauge for stats and tests)."""
        with self._lock:
            return sum(len(counts) for counts in self._pending.values())
