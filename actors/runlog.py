"""The run log writer: batches finished runs and writes them with a few statements per batch.

It flushes when its mailbox is empty (low latency when traffic is light) or when the buffer
holds ``batch_rows`` runs (throughput when it is heavy). Callers waiting on a run (manual exec,
a process state's actions) are answered only after the run is durable.

A finished job becomes its storage row at once (``run_row``): the RUN map of the protocol is
built only for a run somebody waits on, or for ``on_logged``. Most runs have neither, and a
map per run was more than half of the run log's time per run.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, InvalidStateError
from functools import partial
from typing import Any, Protocol

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import Flush, RunJob, RunsFinished
from brokerflow.bus.completion import Completion
from brokerflow.errors import BrokerflowError

log = logging.getLogger("brokerflow.runlog")

MAX_PENDING = 200_000

Row = tuple  # storage.repositories.runs.COLUMNS order; ``actions`` a list of maps, encoded by the write
STATUS = 6  # the row's status column
_NO_TICKET = (None, None)
CHECKPOINT_EVERY_MS = 200  # checkpoints ride with a run batch at most this often (and on Flush)
RETRYING = "retrying"  # a run parked while its webhook waits for the next attempt (actors.webhook_delivery)
PENDING = "pending"  # an action of a parked run not reached yet
RESUMED = "resumed"  # RunJob.extra key: the run was written before (parked); this write replaces it


def run_row(job: RunJob, finished_ms: int) -> Row:
    """The run's storage row: its results, then the actions it never reached as skipped (as
    ``pending`` while a webhook of the run waits for its next attempt: they may still run)."""
    results, actions = job.results, job.actions
    done = len(results)
    status = job.status
    if done < len(actions):
        unreached = PENDING if status == RETRYING else "skipped"
        entries: Any = [*results, *[{"type": action.get("type"), "status": unreached, "ms": 0.0}
                                    for action in actions[done:]]]
    else:
        entries = results
    if status != "failed" and status != "skipped" and status != RETRYING:
        status = "success"
    context = job.context  # ticket_of, inline: once per run
    source, seq = (context.get("_ticket") if type(context) is dict else None) or _NO_TICKET
    return (job.run_id, job.rule_id, job.rule_version, job.brand, job.trigger, job.event_id, status,
            job.error, entries, job.started_ms, finished_ms, job.extra.get("run_as"), source, seq)


def _resumed(job: RunJob) -> bool:
    """A run written before (parked while its webhook was retried): its event was settled then."""
    return bool(job.extra and job.extra.get(RESUMED))


def ticket_of(job: RunJob) -> tuple[str, int] | None:
    """The (source, seq) of the event a run was started for, if it came from the bus."""
    context = job.context
    return context.get("_ticket") if isinstance(context, dict) else None


def record_of(row: Row) -> dict[str, Any]:
    """The RUN shape of the protocol (times in unix ms; the API renders them)."""
    record: dict[str, Any] = {
        "id": row[0], "rule_id": row[1], "rule_version": row[2], "brand": row[3], "trigger": row[4],
        "event_id": row[5], "status": row[6], "actions": [dict(entry) for entry in row[8]], "error": row[7],
        "started_at": row[9], "finished_at": row[10],
    }
    if row[11] is not None:
        record["run_as"] = row[11]
    return record


def run_record(job: RunJob, finished_ms: int) -> dict[str, Any]:
    """The RUN shape of the protocol for ``job`` finished at ``finished_ms``."""
    return record_of(run_row(job, finished_ms))


class RunCounters:
    """Run totals for ``MngGetStats``: what the store held at start plus what was logged since."""

    def __init__(self, initial: dict[str, int] | None = None) -> None:
        base = initial or {}
        self.values = {key: int(base.get(key, 0)) for key in ("logged", "success", "failed", "skipped")}

    def add(self, status: str) -> None:
        self.values["logged"] += 1
        self.values[status] = self.values.get(status, 0) + 1

    def add_all(self, statuses: Iterable[str]) -> None:
        """``add`` for a written batch: one count in C, one update per status."""
        values = self.values
        for status, count in Counter(statuses).items():
            values[status] = values.get(status, 0) + count
            values["logged"] += count

    def snapshot(self) -> dict[str, int]:
        return dict(self.values)


# Upper bounds (ms) of the event-to-run latency buckets: Prometheus's defaults, stretched to a minute.
LATENCY_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000)


class RunLatency:
    """How long runs took from their event's ``ts`` to being logged: a histogram of fixed buckets.

    The run log is its one writer (a ``bisect`` per run, in C); ``/metrics`` reads ``snapshot``.
    Runs without an event time (a process state's actions) are not counted.
    """

    def __init__(self, bounds_ms: tuple[int, ...] = LATENCY_BOUNDS_MS) -> None:
        self.bounds_ms = bounds_ms
        self.counts = [0] * (len(bounds_ms) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum_ms = 0
        self.count = 0

    def observe_all(self, latencies_ms: Iterable[int]) -> None:
        """Count a batch: the buckets found and tallied in C (``map``, ``Counter``), one update per bucket."""
        latencies = latencies_ms if isinstance(latencies_ms, list) else list(latencies_ms)
        counts = self.counts
        for bucket, seen in Counter(map(partial(bisect_left, self.bounds_ms), latencies)).items():
            counts[bucket] += seen
        self.sum_ms += sum(latencies)
        self.count += len(latencies)

    def snapshot(self) -> dict[str, Any]:
        """``{"bounds_ms", "counts" (per bucket, +Inf last), "sum_ms", "count"}``."""
        return {"bounds_ms": list(self.bounds_ms), "counts": list(self.counts), "sum_ms": self.sum_ms,
                "count": self.count}


def _latencies_ms(written: list[tuple[Row, RunJob]]) -> list[int]:
    """Each written run's time from its event (``_ts`` of the context) to its finish."""
    stamps = [(row[10], job.context.get("_ts")) for row, job in written]
    return [finished - ts if finished > ts else 0 for finished, ts in stamps if ts is not None]

class RunRows(Protocol):
    """``store.runs`` of the storage package, as the run log writes it."""

    def write_rows(self, rows: Sequence[Sequence[object]], checkpoints: Sequence[tuple[str, int, int]] = (),
                   replace: Sequence[Sequence[object]] = (), lease_owner: str | None = None) -> int: ...


class Owned(Protocol):
    """``actors.router.Ownership`` as the run log reads it: the partitions owned now."""

    @property
    def owned(self) -> frozenset[int]: ...


class RunLogActor(SafeActor):
    kind = "runlog"

    def __init__(self, stats: StatsRegistry, runs_repo: RunRows, counters: RunCounters,
                 now_ms: Callable[[], int], batch_rows: int = 1000,
                 on_logged: Callable[[list[dict[str, Any]]], None] | None = None,
                 latency: RunLatency | None = None,
                 completion: Completion | None = None, partitions: tuple[int, ...] = (),
                 ownership: Owned | None = None, lease_owner: str | None = None) -> None:
        super().__init__("runlog", stats)
        self.runs_repo, self.counters, self.now_ms = runs_repo, counters, now_ms
        self.latency = latency
        self.batch_rows = batch_rows
        self.on_logged = on_logged
        # Replay-served sources: the checkpoint of each owned partition is stored with a run batch.
        # Under serve --cluster the owned partitions change at runtime (``ownership``), and a
        # checkpoint is stored only while this member holds the partition's lease (``lease_owner``).
        self.completion, self.partitions, self.ownership = completion, frozenset(partitions), ownership
        self.lease_owner = lease_owner
        self._stored_marks: dict[str, int] = {}
        self._marks_due_ms = 0
        self.pending: list[tuple[Row, RunJob]] = []
        self.handlers = {RunsFinished: self.on_finished, Flush: self.on_flush}

    def on_finished(self, message: RunsFinished) -> None:
        now = self.now_ms()
        append = self.pending.append
        for job in message.jobs:
            try:
                append((run_row(job, now), job))
            except Exception as exc:  # noqa: BLE001 - one broken job must not cost the others
                self.cell.failed += 1
                log.exception("runlog: a finished job could not be recorded: %r", type(job).__name__)
                if isinstance(job, RunJob):
                    self._tell(job, exc)  # whoever waits on it learns now, not at its own timeout
        if len(self.pending) >= self.batch_rows or self.inbox_empty():
            self.flush()

    def on_flush(self, message: Flush) -> None:
        self.flush()
        self._store_checkpoints()
        if message.reply is not None:
            message.reply.set_result(True)

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        marks = self._due_checkpoints()  # taken before this batch is settled: never ahead of the log
        try:
            self._write(batch, marks)
            written = batch
            self._checkpoints_stored(marks)
        except Exception:
            written = self._write_one_by_one(batch)
        if self.completion is not None:
            self.completion.settle([(ticket_of(job), -1) for _, job in written if not _resumed(job)])
        self.counters.add_all([row[STATUS] for row, _ in written if row[STATUS] != RETRYING])
        if self.latency is not None:
            try:
                self.latency.observe_all(_latencies_ms(written))
            except Exception:  # noqa: BLE001 - a metric must never cost a logged run its reply
                log.exception("runlog: the latency histogram could not be updated")
        for row, job in written:
            reply = job.reply
            if reply is not None and not reply.done():
                reply.set_result(record_of(row))
        if written and self.on_logged is not None:
            self.on_logged([record_of(row) for row, _ in written])

    def _write(self, batch: list[tuple[Row, RunJob]], checkpoints: list[tuple[str, int, int]] | None = None) -> None:
        """New runs are inserted (a run already stored is left as it is); a resumed run, written
        before while its webhook was retried, replaces its stored row. ``checkpoints`` go in the
        same transaction."""
        fresh, resumed = [], []
        for row, job in batch:
            extra = job.extra  # _resumed, inline: once per run
            (resumed if extra and extra.get(RESUMED) else fresh).append(row)
        self.runs_repo.write_rows(fresh, checkpoints or (), replace=resumed, lease_owner=self.lease_owner)

    def _write_one_by_one(self, batch: list[tuple[Row, RunJob]]) -> list[tuple[Row, RunJob]]:
        """After a failed batch: write each run alone to tell a poison run from a storage outage.

        Runs refused for what they are (a validation or type error), or failing while others of
        the batch are written, can never be stored: they are dropped (logged, counted, their
        waiters told) so they never block the log. Otherwise the storage is down: the runs are
        kept for the next flush and the error is raised.
        """
        written, failed = [], []
        for item in batch:
            try:
                self._write([item])
                written.append(item)
            except Exception as exc:  # noqa: BLE001 - sorted out below
                failed.append((item, exc))
        kept = []
        for (row, job), exc in failed:
            if written or self._is_poison(exc):
                self.cell.failed += 1
                log.error("runlog: run %s cannot be stored and is dropped: %s", row[0], exc, extra=job.log_fields())
                self._tell(job, exc)
                if self.completion is not None and not _resumed(job):  # never stored: its event must not wait
                    self.completion.settle([(ticket_of(job), -1)])
            else:
                kept.append(((row, job), exc))
        if kept:
            self._keep([item for item, _ in kept])
            raise kept[0][1]
        return written

    # -- checkpoints ------------------------------------------------------------------------------
    def _due_checkpoints(self, force: bool = False) -> list[tuple[str, int, int]]:
        """``(source, partition, seq)`` rows of the watermarks that moved, when it is time.

        The owned set is read before and after the watermarks and only partitions owned both
        times are written: a partition given up meanwhile (its events now settled here without
        running) never gets a watermark that passed them.
        """
        owned = self._owned()
        if self.completion is None or not owned:
            return []
        now = self.now_ms()
        if not force and now < self._marks_due_ms:
            return []
        self._marks_due_ms = now + CHECKPOINT_EVERY_MS
        moved = {source: seq for source, seq in self.completion.watermarks().items()
                 if seq >= 0 and self._stored_marks.get(source) != seq}
        owned = sorted(owned & self._owned())
        return [(source, partition, seq) for source, seq in moved.items() for partition in owned]

    def _owned(self) -> frozenset[int]:
        return self.partitions if self.ownership is None else self.ownership.owned

    def _checkpoints_stored(self, marks: list[tuple[str, int, int]]) -> None:
        for source, _, seq in marks:
            self._stored_marks[source] = seq

    def _store_checkpoints(self) -> None:
        """Store moved watermarks without runs (a stream whose events start no run)."""
        marks = self._due_checkpoints(force=True)
        if not marks:
            return
        try:
            self.runs_repo.write_rows([], marks, lease_owner=self.lease_owner)
            self._checkpoints_stored(marks)
        except Exception:  # noqa: BLE001 - the next flush tries again; a stale checkpoint only replays more
            log.exception("runlog: could not store the checkpoints")

    @staticmethod
    def _is_poison(exc: Exception) -> bool:
        """A run storage refuses for what it is (not for being unavailable)."""
        return isinstance(exc, (BrokerflowError, TypeError, ValueError))

    def _keep(self, failed: list[tuple[Row, RunJob]]) -> None:
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
        """Fail the job's waiter, if it has one still waiting; never raises (it runs in handlers)."""
        reply = getattr(job, "reply", None)
        if isinstance(reply, Future) and not reply.done():
            try:
                reply.set_exception(exc)
            except InvalidStateError:  # answered in between by another thread
                pass

    def on_stop(self) -> None:
        try:
            self.flush()
            self._store_checkpoints()
        except Exception:  # noqa: BLE001 - already logged; stopping must go on
            pass
