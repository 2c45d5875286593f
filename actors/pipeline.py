"""The routing slip: who performs a job's next action, and where finished runs go.

Jobs are grouped per destination so one message carries many jobs: per-event actor messages
are the cost that batching removes (see the performance notes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pykka

from brokerflow.actors.messages import JobBatch, RunJob, RunsFinished
from brokerflow.workflow.catalog import ACTIONS

log = logging.getLogger("brokerflow.actors")

RUNLOG = "runlog"
UNKNOWN = "unknown"
EXECUTORS: dict[str, str] = {kind: spec.executor for kind, spec in ACTIONS.items()}


def executor_of(job: RunJob) -> str:
    """The actor kind for the job's next action, or ``runlog`` when the run is over."""
    results, actions = job.results, job.actions
    if job.status != "running" or len(results) >= len(actions):
        return RUNLOG
    return EXECUTORS.get(actions[len(results)].get("type", ""), UNKNOWN)


class Pipeline:
    """Holds the action actors' refs (filled in once they have started) and dispatches jobs."""

    def __init__(self) -> None:
        self.refs: dict[str, pykka.ActorRef] = {}

    def register(self, executor: str, ref: pykka.ActorRef) -> None:
        self.refs[executor] = ref

    def dispatch(self, jobs: Iterable[RunJob]) -> None:
        refs = self.refs
        groups: dict[str, list[RunJob]] = {}
        for job in jobs:  # executor_of, inlined: this loop runs once per job and action hop
            results, actions = job.results, job.actions
            if job.status != "running" or len(results) >= len(actions):
                target = RUNLOG
            else:
                target = EXECUTORS.get(actions[len(results)].get("type", ""), UNKNOWN)
            if target not in refs and target != RUNLOG:
                job = job.with_result("failed", 0.0, f"no executor for action {job.next_action.get('type')!r}"
                                      f" in this context")
                target = RUNLOG
            group = groups.get(target)
            if group is None:
                groups[target] = [job]
            else:
                group.append(job)
        for target, group in groups.items():
            ref = refs.get(target)
            if ref is None:
                log.error("no %s actor: %d finished runs dropped", target, len(group))
                continue
            ref.tell(RunsFinished(tuple(group)) if target == RUNLOG else JobBatch(tuple(group)))
