"""The engine's owned partitions as ``serve --cluster`` changes them: gains and losses, in order.

One job: apply a change of ownership so that no event of a partition runs twice or not at all.

- **Losing** partitions (handed back, or fenced) is immediate: the router's ``Ownership`` is
  swapped at once, so no event of theirs starts a run from here on. What the ingress already
  took keeps running; ``done_below`` tells when it is stored, and ``watermarks`` read *before*
  the swap are the checkpoints the next owner may start from.
- **Gaining** partitions with ``--replay``: the replay cursor of each source is rewound to the
  lowest checkpoint of the gained partitions, on the ingress thread, and the new ownership goes
  into the router's mailbox there, in the events' order, with the ``Skips`` that keep the replay
  from running again what ran here (or at the last owner) before. The runs the last owner
  logged past its checkpoints are remembered, so a replayed event skips them before its actions.
  Without ``--replay`` the partitions are owned from that point of the router's mailbox on.
  Either way the router has the rule actors reload the gained partitions' rule state there.
- **Handing back** (``wait_done``): the rule state writer is flushed, then the run log, before
  the caller frees the leases, so the next owner loads what was written here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future
from typing import Any

from brokerflow.actors.messages import ChangeOwnership
from brokerflow.actors.router import Ownership
from brokerflow.bus.completion import Completion
from brokerflow.bus.recovery import Recovery, Rewound
from brokerflow.workflow.cluster import Window

__all__ = ["Partitioning"]

log = logging.getLogger("brokerflow.cluster")


class Partitioning:
    """What the cluster link may do to the engine's ownership (built by the engine)."""

    def __init__(self, ownership: Ownership, completion: Completion | None, recovery: Callable[[], Recovery | None],
                 tell_router: Callable[[Any], None], ran_since: Callable[[str, int], set[tuple[int, int | None]]],
                 forget_processes: Callable[[Callable[[str], bool]], int], flush_runlog: Callable[[float], None],
                 pid_partition: Callable[[str], int], member: str | None = None,
                 flush_state: Callable[[float], None] | None = None) -> None:
        self.member = member  # this engine's id in the cluster (None outside serve --cluster)
        self.changes_from = 0  # serve --cluster: the last change stored before this engine loaded its state
        self.ownership, self.completion, self._recovery = ownership, completion, recovery
        self._tell_router, self._ran_since = tell_router, ran_since
        self._forget_processes, self._flush_runlog, self.pid_partition = forget_processes, flush_runlog, pid_partition
        self._flush_state = flush_state  # the rule state writer: stored before a hand-over frees the leases

    @property
    def owned(self) -> frozenset[int]:
        return self.ownership.owned

    # -- gaining ------------------------------------------------------------------------------
    def gain(self, partitions: Collection[int], checkpoints: Mapping[str, Mapping[int, int]]) -> Future:
        """Own ``partitions`` (their stored ``checkpoints``: source -> partition -> seq); the
        Future completes once the router owns them."""
        gained = frozenset(partitions)
        done: Future = Future()
        recovery = self._recovery()
        if self.completion is None or recovery is None:
            # Through the router's mailbox all the same: it tells the rule actors to load the
            # gained partitions' rule state before the events that follow.
            self._tell_router(ChangeOwnership(self.ownership.owned | gained, self.ownership.skips, done))
            return done
        resume: dict[str, int] = {}
        marks: dict[str, dict[int, int]] = {}
        for source, by_partition in checkpoints.items():
            marks[source] = {p: seq for p, seq in by_partition.items() if p in gained}
            if marks[source]:
                # A gained partition without a checkpoint of a source others have: read it from the start.
                lowest = min(by_partition.get(p, -1) for p in gained)
                resume[source] = lowest + 1
                self.completion.remember_runs(source, self._ran_since(source, lowest))

        def apply(rewound: Rewound, positions: dict[str, int]) -> None:  # on the ingress thread
            current = self.ownership.owned
            windows = {source: Window(low, high, current, holes) for source, (low, high, holes) in rewound.items()}
            skips = self.ownership.skips.with_takeover(gained, marks, windows, positions)
            self._tell_router(ChangeOwnership(current | gained, skips, done))

        recovery.request_takeover(resume, apply)
        return done

    # -- losing -------------------------------------------------------------------------------
    def lose(self, partitions: Collection[int]) -> tuple[dict[str, int], dict[str, int]]:
        """Stop owning ``partitions`` now; ``(watermarks before, positions before)``: the
        checkpoints that are safe for them, and what must be done before they are handed over."""
        lost = frozenset(partitions)
        marks = self.completion.watermarks() if self.completion is not None else {}
        positions = self.completion.positions() if self.completion is not None else {}
        self.ownership.set(self.ownership.owned - lost, self.ownership.skips.without(lost))
        forgotten = self._forget_processes(lambda pid: self.pid_partition(pid) in lost)
        if forgotten:
            log.info("cluster: %d live Workflow Machine process(es) of the partitions given up dropped from memory",
                     forgotten)
        return marks, positions

    def wait_done(self, positions: Mapping[str, int], timeout_s: float) -> bool:
        """Until every event taken below ``positions`` is stored (bounded); then the rule state
        and the run log are flushed.

        A rule actor hands its state changes to the writer before it settles the batch's events,
        so once they are done the changes are in the writer's mailbox: the flush, behind them,
        stores them before the caller frees the leases and the next owner loads them.
        """
        deadline = time.monotonic() + timeout_s
        done = self.completion is None or not positions
        while not done and time.monotonic() < deadline:
            done = self.completion.done_below(dict(positions))
            if not done:
                time.sleep(0.02)
        if self._flush_state is not None:
            try:
                self._flush_state(max(2.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - the next owner reads the state as stored: a cooldown may let one through
                log.exception("cluster: the rule state could not be stored before a hand-over")
        try:
            self._flush_runlog(max(1.0, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - the checkpoints stored are only older: more is replayed
            log.exception("cluster: the run log could not be flushed before a hand-over")
        return done
