"""The run log: id blocks, the fast batch write, newest-first reads and counters."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from peewee import fn

from brokerflow.errors import ValidationFailed
from brokerflow.storage.bulk import encode_documents, insert_rows
from brokerflow.storage.migrations import RUN_IDS
from brokerflow.storage.repositories.base import Repository, invalid, is_int
from brokerflow.storage.repositories.cluster import fenced_checkpoints_sql

COLUMNS = (
    "id", "rule_id", "rule_version", "brand", "trigger", "event_id", "status", "error",
    "actions", "started_at", "finished_at", "run_as", "source", "seq",
)
CHECKPOINT_COLUMNS = ("source", "partition", "seq", "updated_at")
JSON_COLUMNS = ("actions",)
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
STATUSES = ("success", "failed", "skipped")
RETRYING = "retrying"  # a run whose webhook waits for its next attempt (PROTOCOL section 10); not yet counted
# A run written again (its webhook retried) replaces what its earlier write said.
_REPLACE = ('ON CONFLICT ("id") DO UPDATE SET "status" = excluded."status", "error" = excluded."error", '
            '"actions" = excluded."actions", "finished_at" = excluded."finished_at"')


def _row(run: dict) -> tuple:
    """A run as a row of ``COLUMNS``; ``actions`` stays a list (``write_rows`` encodes it)."""
    get = run.get
    return (
        run["id"], get("rule_id"), get("rule_version"), get("brand"), get("trigger"),
        get("event_id"), run["status"], get("error"), get("actions") or [],
        get("started_at"), get("finished_at"), get("run_as"), get("source"), get("seq"),
    )


def _bad_run(runs: Sequence[object]) -> ValidationFailed:
    """The first run that cannot be a row, named by its index (computed only on failure)."""
    for index, run in enumerate(runs):
        if not isinstance(run, dict):
            return invalid(f"runs[{index}]", "not a map", "a run must be a map")
        for key in ("id", "status"):
            if key not in run:
                return ValidationFailed(
                    f"run {index} has no {key}",
                    details=[{"path": f"runs[{index}].{key}", "message": "required"}],
                )
    return ValidationFailed("runs could not be encoded", details=[{"path": "runs", "message": "not JSON"}])


def _as_dict(row: dict) -> dict:
    """A RUN in the API's shape: ``error``, ``run_as``, ``source``, ``seq`` only when set."""
    for optional in ("error", "run_as", "source", "seq"):
        if row[optional] is None:
            del row[optional]
    return row


class RunRepository(Repository):
    def allocate_ids(self, n: int) -> range:
        """``n`` run ids nobody else gets: one atomic bump of the shared counter row.

        The row lock (PostgreSQL) or the write lock (SQLite) serializes the bump, so threads
        and several engines on one database always receive disjoint ranges.
        """
        if not is_int(n) or n < 1:
            raise invalid("n", "must be a positive integer")
        block = self._m.IdBlock
        with self._write():
            block.update(next=block.next + n).where(block.name == RUN_IDS).execute()
            end = block.select(block.next).where(block.name == RUN_IDS).scalar()
        return range(end - n, end)

    def write_many(self, runs: Sequence[dict]) -> int:
        """Append finished runs (ids from ``allocate_ids``) in one transaction, on the raw cursor.

        A run whose id is already stored is skipped, so a retried batch is written once.
        Returns the number of runs handed in.
        """
        try:
            rows = [_row(run) for run in runs]
        except (KeyError, TypeError, AttributeError, ValueError):
            raise _bad_run(runs) from None
        try:
            return self.write_rows(rows)
        except ValidationFailed:
            raise _bad_run(runs) from None

    def write_rows(self, rows: Sequence[Sequence[object]], checkpoints: Sequence[tuple[str, int, int]] = (),
                   replace: Sequence[Sequence[object]] = (), lease_owner: str | None = None) -> int:
        """``write_many`` for runs already in ``COLUMNS`` order, ``actions`` a list of maps.

        The run log builds these straight from its jobs: no RUN map per run, each run's actions
        encoded once, a few multi-row statements per batch. Actions JSON cannot encode make the
        batch a ValidationFailed; nothing of it is written. A run whose id, or whose event
        ``(source, seq)`` and rule, is stored already is skipped: a replayed event never logs a
        second run. ``checkpoints`` (``(source, partition, seq)``) are stored in the same
        transaction, so a checkpoint and the runs it counts are never apart.

        ``replace``: runs written before that have moved on (a webhook retried, then the rest
        of the run): their status, error, actions and ``finished_at`` replace the stored ones,
        in the same transaction; of two rows of one run the later wins.

        ``lease_owner`` (``serve --cluster``, PostgreSQL): a checkpoint is written only for a
        partition whose lease that member holds now, so a member never overwrites the
        checkpoint of a partition another member took over.
        """
        try:
            encoded = encode_documents(rows, COLUMNS, JSON_COLUMNS)  # before the write lock is taken
            replacing = encode_documents(list({row[0]: row for row in replace}.values()), COLUMNS, JSON_COLUMNS)
        except (TypeError, ValueError):
            raise ValidationFailed("runs could not be encoded",
                                   details=[{"path": "runs", "message": "not JSON"}]) from None
        with self._write():
            insert_rows(self._db, "runs", COLUMNS, encoded, "ON CONFLICT DO NOTHING")
            insert_rows(self._db, "runs", COLUMNS, replacing, _REPLACE)
            if checkpoints and lease_owner is not None:
                self._fenced_checkpoints(checkpoints, lease_owner)
            elif checkpoints:
                now = self._clock()
                insert_rows(self._db, "checkpoints", CHECKPOINT_COLUMNS,
                            [(source, partition, seq, now) for source, partition, seq in checkpoints],
                            'ON CONFLICT ("source", "partition") DO UPDATE SET "seq" = excluded."seq", '
                            '"updated_at" = excluded."updated_at"')
        return len(rows) + len(replace)

    def _fenced_checkpoints(self, checkpoints: Sequence[tuple[str, int, int]], owner: str) -> None:
        now = self._clock()
        cursor = self._db.cursor()
        for start in range(0, len(checkpoints), 500):
            chunk = checkpoints[start:start + 500]
            params: list[object] = []
            for source, partition, seq in chunk:
                params += [source, partition, seq, now]
            cursor.execute(fenced_checkpoints_sql(len(chunk)), [*params, owner])

    def checkpoints(self, partitions: Collection[int]) -> dict[str, dict[int, int]]:
        """``{source: {partition: seq}}`` stored for ``partitions``."""
        table = self._m.Checkpoint
        query = table.select(table.source, table.partition, table.seq).where(table.partition.in_(list(partitions)))
        found: dict[str, dict[int, int]] = {}
        with self._read():
            for source, partition, seq in query.tuples():
                found.setdefault(source, {})[partition] = seq
        return found

    def ran_since(self, source: str, after_seq: int) -> set[tuple[int, int | None]]:
        """``(seq, rule_id)`` of the runs logged for ``source``'s events past ``after_seq``:
        what a replay after a crash must not run again (the crash window is small)."""
        run = self._m.Run
        query = run.select(run.seq, run.rule_id).where((run.source == source) & (run.seq > after_seq))
        with self._read():
            return set(query.tuples())

    def list(
        self,
        rule_id: int | None = None,
        brand: str | None = None,
        status: str | None = None,
        limit: int = DEFAULT_LIMIT,
        before_id: int | None = None,
        brands: Collection[str] | None = None,
    ) -> list[dict]:
        """Newest first; ``before_id`` pages backwards, ``limit`` is capped at 1000."""
        if not is_int(limit) or limit < 1:
            raise invalid("limit", "must be a positive integer")
        for name, value in (("rule_id", rule_id), ("before_id", before_id)):
            if value is not None and not is_int(value):
                raise invalid(name, "must be an integer")
        run = self._m.Run
        query = run.select().order_by(run.id.desc()).limit(min(limit, MAX_LIMIT))
        for column, value in ((run.rule_id, rule_id), (run.brand, brand), (run.status, status)):
            if value is not None:
                query = query.where(column == value)
        if before_id is not None:
            query = query.where(run.id < before_id)
        if brands is not None:
            if not brands:
                return []
            query = query.where(run.brand.in_(list(brands)))
        with self._read():
            return [_as_dict(row) for row in query.dicts()]

    def trim(self, before_ms: int, after_id: int = -1, limit: int = 500) -> tuple[int, int | None]:
        """One retention step: runs finished before ``before_ms`` (``Repository._trim_batch``)."""
        run = self._m.Run
        return self._trim_batch(run, run.finished_at, before_ms, after_id, limit)

    def counts(self) -> dict[str, int]:
        """``{"logged", "success", "failed", "skipped"}`` over the whole log (runs still retrying
        a webhook are counted once they end)."""
        run = self._m.Run
        query = run.select(run.status, fn.COUNT(run.id)).group_by(run.status).tuples()
        with self._read():
            by_status = dict(query)
        counts = {"logged": sum(by_status.get(status, 0) for status in STATUSES)}
        counts.update({status: by_status.get(status, 0) for status in STATUSES})
        return counts
