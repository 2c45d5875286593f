"""The shared shape of an action actor: perform each job's next action, then pass it on.

A subclass implements ``perform`` (raise ``ActionFailed`` with a clear text to fail the run)
and may buffer side effects for ``commit``, which writes them once per batch; if the commit
fails, every job that contributed to it fails with that error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import JobBatch, RunJob
from brokerflow.actors.pipeline import Pipeline
from brokerflow.errors import BrokerflowError

log = logging.getLogger("brokerflow.actions")


class ActionActor(SafeActor):
    kind = "action"

    def __init__(self, name: str, stats: StatsRegistry, pipeline: Pipeline,
                 now_ms: Callable[[], int]) -> None:
        super().__init__(name, stats)
        self.pipeline, self.now_ms = pipeline, now_ms
        self.handlers = {JobBatch: self.on_jobs}

    def perform(self, job: RunJob, params: Mapping[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def commit(self) -> None:
        """Write what ``perform`` buffered for this batch (default: nothing)."""

    def on_jobs(self, message: JobBatch) -> None:
        perform_one = self._perform_one
        done = [perform_one(job) for job in message.jobs]
        try:
            self.commit()
        except Exception as exc:  # noqa: BLE001 - the runs fail, the actor goes on
            self.cell.failed += 1
            log.exception("%s: batch commit failed", self.name)
            error = f"{self.name} could not store its changes: {type(exc).__name__}"
            done = [_fail_last(job, error) if job.results[-1]["status"] == "success" else job
                    for job in done]
        self.pipeline.dispatch(done)

    def _perform_one(self, job: RunJob) -> RunJob:
        action = job.next_action or {}
        started = perf_counter()
        try:
            detail = self.perform(job, action.get("params") or {})
        except BrokerflowError as exc:
            return job.with_result("failed", _ms(started), exc.text)
        except Exception as exc:  # noqa: BLE001 - a broken action fails its run only
            self.cell.failed += 1
            log.exception("%s: action %s of run %s failed", self.name, action.get("type"), job.run_id,
                          extra=job.log_fields())
            return job.with_result("failed", _ms(started), f"internal error: {type(exc).__name__}")
        ms = (perf_counter() - started) * 1000.0
        return job.with_result("success", ms, **detail) if detail else job.with_result("success", ms)


def _ms(started: float) -> float:
    return (perf_counter() - started) * 1000.0


def _fail_last(job: RunJob, error: str) -> RunJob:
    from dataclasses import replace

    last = dict(job.results[-1], status="failed", error=error)
    return replace(job, results=job.results[:-1] + (last,), status="failed", error=error)
