"""The routing slip: who performs a job's next action, and where finished runs go.

Jobs are grouped per destination so one message carries many jobs: per-event actor messages
are the cost that batching removes (see the performance notes).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from actors.messages import JobBatch, RunJob, RunsFinished
from workflow.catalog import ACTIONS

log = logging.getLogger("brokerflow.actors")

RUNLOG = "runlog"


def executor_of(job: RunJob) -> str:
    """The actor kind for the job's next action, or ``runlog`` when the run is over."""
    action = job.next_action
    if action is None:
        return RUNLOG
    spec = ACTIONS.get(action.get("type", ""))
    return spec.executor if spec is not None else "unknown"


class Pipeline:
    """Holds the action actors' refs (filled in once they have started) and dispatches jobs."""

    def __init__(self) -> None:
        self.refs: dict[str, Any] = {}

    def register(self, executor: str, ref: Any) -> None:
        self.refs[executor] = ref

    def dispatch(self, jobs: Iterable[RunJob]) -> None:
        groups: dict[str, list[RunJob]] = defaultdict(list)
        for job in jobs:
            target = executor_of(job)
            if target != RUNLOG and target not in self.refs:
                job = job.with_result("failed", 0.0, f"no executor for action {job.next_action.get('type')!r}"
                                      f" in this context")
                target = RUNLOG
            groups[target].append(job)
        for target, group in groups.items():
            ref = self.refs.get(target)
            if ref is None:
                log.error("no %s actor: %d finished runs dropped", target, len(group))
                continue
            message = RunsFinished(tuple(group)) if target == RUNLOG else JobBatch(tuple(group))
            ref.tell(message)
