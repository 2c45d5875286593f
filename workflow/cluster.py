"""``serve --cluster``'s pure rules: how partitions are shared out, and what a takeover skips.

Two questions every member answers on its own, from what PostgreSQL says, with no talk
between members (docs/scaling.md, "serve --cluster"):

- **The fair share** (``share_plan``): given the live members and who holds which partition
  lease, which partitions this member should try to take and which it should hand back.
  Deterministic: every member computes the same targets from the same inputs (members sorted
  by id; the first ``P % n`` get one more), so the cluster settles without negotiation.
- **What a takeover skips** (``Skips``): a member that gains partitions rewinds its replay
  cursor to the lowest checkpoint of the gained partitions and reads the journal again from
  there. Of the events it then sees a second time, those of the partitions it already owned
  were run here the first time (a *window* ``[low, high)`` with the partitions done in it),
  and those of a gained partition up to its checkpoint were done by the previous owner
  (``done_upto``). Both are skipped; everything else runs. Seqs the cursor had left in open
  holes were never routed here, so a window does not cover them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["SharePlan", "Skips", "Window", "share_plan", "target_share"]


@dataclass(frozen=True)
class SharePlan:
    """What one member should do now: ``acquire`` (free partitions, in the order to try) and ``release``."""

    target: int
    acquire: tuple[int, ...] = ()
    release: tuple[int, ...] = ()


def target_share(member: str, members: Collection[str], partitions: int) -> int:
    """How many partitions ``member`` should own: ``P // n``, plus one for the first ``P % n``
    members by id. The targets add up to ``P`` exactly, so no partition is left unwanted."""
    ordered = sorted(set(members) | {member})
    base, extra = divmod(partitions, len(ordered))
    return base + (1 if ordered.index(member) < extra else 0)


def share_plan(member: str, members: Collection[str], owners: Mapping[int, str | None],
               partitions: int) -> SharePlan:
    """The plan of ``member`` among live ``members`` given ``owners`` (partition -> live owner,
    None or absent when the lease is free or expired).

    Below its target the member asks for free partitions, starting at an offset of its own
    (its rank × P / n) so that members joining together mostly ask for different ones. Above
    it, it releases the highest-numbered of its own. A partition held by a member that is not
    in ``members`` (its heartbeat stopped) counts as taken until its lease expires: fencing
    depends on nobody starting before the old owner stopped.
    """
    ordered = sorted(set(members) | {member})
    target = target_share(member, ordered, partitions)
    mine = sorted(p for p in range(partitions) if owners.get(p) == member)
    if len(mine) > target:
        return SharePlan(target, release=tuple(mine[target:]))
    start = ordered.index(member) * partitions // len(ordered)
    free = [p for p in ((start + i) % partitions for i in range(partitions)) if owners.get(p) is None]
    return SharePlan(target, acquire=tuple(free[:target - len(mine)]))


@dataclass(frozen=True)
class Window:
    """Seqs ``[low, high)`` of ``source`` already routed here for the partitions in ``done``
    (except those in ``holes``: never taken, so never routed)."""

    low: int
    high: int
    done: frozenset[int]
    holes: tuple[tuple[int, int], ...] = ()

    def covers(self, seq: int, partition: int) -> bool:
        if not (self.low <= seq < self.high) or partition not in self.done:
            return False
        return not any(first <= seq <= last for first, last in self.holes)


@dataclass(frozen=True)
class Skips:
    """Per source, the windows of past rewinds and each gained partition's checkpoint at takeover.

    Immutable: the router holds one and a takeover replaces it whole (``with_takeover``).
    """

    windows: Mapping[str, tuple[Window, ...]] = field(default_factory=dict)
    done_upto: Mapping[str, Mapping[int, int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.windows) or bool(self.done_upto)

    def skip(self, source: str, seq: int, partition: int) -> bool:
        """Was the event ``(source, seq)`` of ``partition`` done already (here or by the last owner)?"""
        upto = self.done_upto.get(source)
        if upto is not None and seq <= upto.get(partition, -1):
            return True
        return any(window.covers(seq, partition) for window in self.windows.get(source, ()))

    def with_takeover(self, gained: Iterable[int], checkpoints: Mapping[str, Mapping[int, int]],
                      windows: Mapping[str, Window], positions: Mapping[str, int] | None = None) -> Skips:
        """These skips after taking over ``gained``: their ``checkpoints`` (source -> partition ->
        seq) and the ``windows`` the rewinds opened. ``positions`` (source -> the lowest seq
        not yet taken) lets go of windows the cursor has passed for good."""
        gained = frozenset(gained)
        done_upto = {source: dict(marks) for source, marks in self.done_upto.items()}
        for source, marks in checkpoints.items():
            known = done_upto.setdefault(source, {})
            for partition, seq in marks.items():
                if partition in gained:
                    known[partition] = seq
        kept: dict[str, tuple[Window, ...]] = {}
        for source, old in self.windows.items():
            position = None if positions is None else positions.get(source)
            old = tuple(w for w in old if position is None or w.high > position)
            if old:
                kept[source] = old
        for source, window in windows.items():
            kept[source] = (*kept.get(source, ()), window)
        return Skips(kept, done_upto)

    def without(self, lost: Iterable[int]) -> Skips:
        """Partitions given up: their checkpoints at takeover no longer apply (a later takeover
        brings fresh ones)."""
        lost = frozenset(lost)
        done_upto = {source: {p: seq for p, seq in marks.items() if p not in lost}
                     for source, marks in self.done_upto.items()}
        return Skips(dict(self.windows), {s: m for s, m in done_upto.items() if m})
