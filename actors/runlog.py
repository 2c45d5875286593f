"""The run log writer: batches finished runs and writes them with executemany speed.

It flushes when its mailbox is empty (low latency when traffic is light) or when the buffer
holds ``batch_rows`` runs (throughput when it is heavy). Callers waiting on a run (manual exec,
a process state's actions) are answered only after the run is durable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from actors.base import SafeActor, StatsRegistry
from actors.messages import Flush, RunJob, RunsFinished
from brokerflow.errors import BrokerflowError

log = logging.getLogger("brokerflow.runlog")

MAX_PENDING = 200_000


def run_record(job: RunJob, finished_ms: int) -> dict[str, Any]:
    """The RUN shape of the protocol (times in unix ms; the API renders them)."""
    actions = [dict(result) for result in job.results]
    for action in job.actions[len(job.results):]:
        actions.append({"type": action.get("type"), "status": "skipped", "ms": 0.0})
    status = job.status if job.status in ("failed", "skipped") else "success"
    record: dict[str, Any] = {
        "id": job.run_id, "rule_id": job.rule_id, "rule_version": job.rule_version,
        "brand": job.brand, "trigger": job.trigger, "event_id": job.event_id, "status": status,
        "actions": actions, "error": job.error, "started_at": job.started_ms, "finished_at": finished_ms,
    }
    if job.extra.get("run_as") is not None:
        record["run_as"] = job.extra["run_as"]
    return record


class RunCounters:
    """Run totals for ``MngGetStats``: what the store held at start plus what was logged since."""

    def __init__(self, initial: dict[str, int] | None = None) -> None:
        base = initial or {}
        self.values = {key: int(base.get(key, 0)) for key in ("logged", "success", "failed", "skipped")}

    def add(self, status: str) -> None:
        self.values["logged"] += 1
        self.values[status] = self.values.get(status, 0) + 1

    def snapshot(self) -> dict[str, int]:
        return dict(self.values)


class RunLogActor(SafeActor):
    kind = "runlog"

    def __init__(self, stats: StatsRegistry, runs_repo: Any, counters: RunCounters,
                 now_ms: Callable[[], int], batch_rows: int = 1000,
                 on_logged: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        super().__init__("runlog", stats)
        self.runs_repo, self.counters, self.now_ms = runs_repo, counters, now_ms
        self.batch_rows = batch_rows
        self.on_logged = on_logged
        self.pending: list[tuple[dict[str, Any], RunJob]] = []
        self.handlers = {RunsFinished: self.on_finished, Flush: self.on_flush}

    def on_finished(self, message: RunsFinished) -> None:
        now = self.now_ms()
        for job in message.jobs:
            try:
                self.pending.append((run_record(job, now), job))
            except Exception:  # noqa: BLE001 - one broken job must not cost the others
                self.cell.failed += 1
                log.exception("runlog: a finished job could not be recorded: %r", type(job).__name__)
        if len(self.pending) >= self.batch_rows or self.inbox_empty():
            self.flush()

    def on_flush(self, message: Flush) -> None:
        self.flush()
        if message.reply is not None:
            message.reply.set_result(True)

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        try:
            self.runs_repo.write_many([record for record, _ in batch])
            written = batch
        except Exception:
            written = self._write_one_by_one(batch)
        for record, job in written:
            self.counters.add(record["status"])
            if job.reply is not None and not job.reply.done():
                job.reply.set_result(record)
        if written and self.on_logged is not None:
            self.on_logged([record for record, _ in written])

    def _write_one_by_one(self, batch: list[tuple[dict[str, Any], RunJob]]) -> list[tuple[dict[str, Any], RunJob]]:
        """After a failed batch: write each run alone to tell a poison run from a storage outage.

        Runs refused for what they are (a validation or type error), or failing while others of
        the batch are written, can never be stored: they are dropped (logged, counted, their
        waiters told) so they never block the log. Otherwise the storage is down: the runs are
        kept for the next flush and the error is raised.
        """
        written, failed = [], []
        for item in batch:
            try:
                self.runs_repo.write_many([item[0]])
                written.append(item)
            except Exception as exc:  # noqa: BLE001 - sorted out below
                failed.append((item, exc))
        kept = []
        for (record, job), exc in failed:
            if written or self._is_poison(exc):
                self.cell.failed += 1
                log.error("runlog: run %s cannot be stored and is dropped: %s", record.get("id"), exc)
                self._tell(job, exc)
            else:
                kept.append(((record, job), exc))
        if kept:
            self._keep([item for item, _ in kept])
            raise kept[0][1]
        return written

    @staticmethod
    def _is_poison(exc: Exception) -> bool:
        """A run storage refuses for what it is (not for being unavailable)."""
        return isinstance(exc, (BrokerflowError, TypeError, ValueError))

    def _keep(self, failed: list[tuple[dict[str, Any], RunJob]]) -> None:
        """Keep runs for the next flush; past the cap the oldest are given up so memory stays bounded."""
        self.pending = failed + self.pending
        overflow = len(self.pending) - MAX_PENDING
        if overflow > 0:
            dropped, self.pending = self.pending[:overflow], self.pending[overflow:]
            log.error("run log unavailable: %d runs dropped", len(dropped))
            for _, job in dropped:
                self._tell(job, RuntimeError("run log unavailable"))

    @staticmethod
    def _tell(job: RunJob, exc: BaseException) -> None:
        if job.reply is not None and not job.reply.done():
            job.reply.set_exception(exc)

    def on_stop(self) -> None:
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - already logged; stopping must go on
            pass
