"""Workflow Machine process states, persisted at every step (one JSON document per pid).

``save`` runs at every changing command, before its reply, so it is a raw upsert (peewee spent
~0.3 ms building and converting it), it takes the state's JSON text from a caller that already
has it (the process workers encode only the new history steps), and concurrent saves are
committed together (``GroupCommit``): with eight workers saving at once, one transaction holds
the write lock instead of eight in a row, each of which waited for the GIL three times
(BEGIN, INSERT, COMMIT) while every other writer waited for it. ``save_many`` is the same for
a caller that has several states at once (the management API's loop after a burst of commands).

A group is one multi-row ``INSERT … ON CONFLICT`` statement, not ``executemany``: SQLite's
``executemany`` releases and re-takes the GIL for every row, and each re-take may wait out
the interpreter's switch interval while other threads run Python.
"""

from __future__ import annotations

import collections
import itertools
import threading
import uuid
from collections.abc import Callable, Sequence

from peewee import IntegrityError

from brokerflow.errors import Conflict
from brokerflow.storage.bulk import insert_rows
from brokerflow.storage.models import dumps
from brokerflow.storage.repositories.base import Repository, invalid, is_int

COLUMNS = ("pid", "state", "updated_at", "ended")
ON_CONFLICT = ('ON CONFLICT ("pid") DO UPDATE SET "state" = EXCLUDED."state", '
               '"updated_at" = EXCLUDED."updated_at", "ended" = EXCLUDED."ended"')
MAX_BATCH_ROWS = 64
Row = tuple


class _Save:
    """One queued row; ``signal`` is released exactly once: when the row is written, or when
    this saver reached the front of the queue and must write the next batch itself."""

    __slots__ = ("row", "error", "done", "signal")

    def __init__(self, row: Row) -> None:
        self.row, self.error, self.done = row, None, False
        self.signal = threading.Lock()
        self.signal.acquire()


class GroupCommit:
    """Rows saved by concurrent threads, written in as few transactions as the timing allows.

    LevelDB's writer queue: a saver queues its row; the one at the front writes every row
    queued so far (up to ``max_rows``) in one transaction while later ones queue behind it,
    wakes the savers it wrote for, and hands the front to the next waiting saver. Every
    ``save`` returns only once its own row is committed (or raises its own error), so callers
    keep persist-before-reply. When a batch fails, its rows are written one by one, so one bad
    row fails only its own saver.
    """

    def __init__(self, write: Callable[[Sequence[Row]], None], max_rows: int = MAX_BATCH_ROWS) -> None:
        self._write = write
        self.max_rows = max(1, max_rows)
        self._mutex = threading.Lock()
        self._queue: collections.deque[_Save] = collections.deque()
        self.batches = 0  # transactions written (the rows are counted by the callers)

    def save(self, row: Row) -> None:
        me = _Save(row)
        with self._mutex:
            self._queue.append(me)
            front = len(self._queue) == 1
        if not front:
            me.signal.acquire()
            if me.done:
                if me.error is not None:
                    raise me.error
                return
        with self._mutex:
            batch = list(itertools.islice(self._queue, self.max_rows))
        written = False
        try:
            self._write_batch(batch)
            written = True
        finally:
            with self._mutex:
                for _ in batch:
                    self._queue.popleft()
                after = self._queue[0] if self._queue else None
            for item in batch:
                if not written and item.error is None:
                    item.error = RuntimeError("the thread writing this save was interrupted; not saved")
                if item is not me:
                    item.done = True
                    item.signal.release()
            if after is not None:
                after.signal.release()
        if me.error is not None:
            raise me.error

    def _write_batch(self, batch: list[_Save]) -> None:
        self.batches += 1
        try:
            self._write([item.row for item in batch])
            return
        except Exception as exc:  # noqa: BLE001 - handed to the saver(s) it belongs to
            if len(batch) == 1:
                batch[0].error = exc
                return
        for item in batch:
            try:
                self._write([item.row])
            except Exception as exc:  # noqa: BLE001 - raised in the saver's own thread
                item.error = exc


def _key(pid: object) -> str | None:
    """The stored key of a pid: pids are strings (an int pid is stored as its digits)."""
    if isinstance(pid, str) and pid:
        return pid
    return str(pid) if is_int(pid) else None


def _ended(state: dict) -> bool:
    """``machine_state``'s ``status: "ended"`` (or a plain ``ended: true``)."""
    return state.get("status") == "ended" or bool(state.get("ended"))


class ProcessRepository(Repository):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commits = GroupCommit(self._write_rows)

    def _write_rows(self, rows: Sequence[Row]) -> None:
        latest = list({row[0]: row for row in rows}.values())  # one row per pid: PostgreSQL refuses a pid twice
        with self._write():
            insert_rows(self._db, self._m.Process._meta.table_name, COLUMNS, latest, ON_CONFLICT)

    def create(self, state: dict) -> str | int:
        """Store a new process and return its pid (a uuid4 hex is assigned when ``state`` has none)."""
        if not isinstance(state, dict):
            raise invalid("state", "not a map", "a process state must be a map")
        if state.get("pid") is None:
            state = {**state, "pid": uuid.uuid4().hex}
        pid = _key(state["pid"])
        if pid is None:
            raise invalid("state.pid", "must be a string", "a pid must be a string")
        model = self._m.Process
        try:
            with self._write():
                model.insert(pid=pid, state=state, updated_at=self._clock(), ended=_ended(state)).execute()
        except IntegrityError:
            taken = [{"path": "state.pid", "message": "taken"}]
            raise Conflict(f"process {pid} exists", details=taken) from None
        return state["pid"]

    def recent(self, limit: int = 50, ended: bool | None = None) -> list[tuple[dict, int]]:
        """``(state, updated_at)`` of the most recently saved processes, newest first (the console's list).

        No index on ``updated_at`` (every process step writes the row): a top-N sort over the table,
        fine for a page people open, not for a hot path.
        """
        if not is_int(limit) or limit < 1:
            raise invalid("limit", "must be a positive integer")
        model = self._m.Process
        query = model.select(model.state, model.updated_at).order_by(model.updated_at.desc(), model.pid)
        if ended is not None:
            query = query.where(model.ended == ended)
        with self._read():
            return [(row.state, row.updated_at) for row in query.limit(limit)]

    def load(self, pid: str) -> dict | None:
        key = _key(pid)
        model = self._m.Process
        with self._read():
            row = None if key is None else model.get_or_none(model.pid == key)
        return None if row is None else row.state

    def save(self, state: dict, text: str | None = None) -> None:
        """Insert or replace the state of ``state["pid"]``.

        ``text``: the state's JSON when the caller has it already (it is stored as given, so
        it must be ``state`` encoded); otherwise the state is encoded here.
        """
        pid = _key(state.get("pid")) if isinstance(state, dict) else None
        if pid is None:
            raise invalid("state.pid", "required", "a process state needs its pid")
        row = (pid, dumps(state) if text is None else text, self._clock(), _ended(state))
        if self._db.in_transaction():  # inside the caller's transaction: no other thread may write it
            self._write_rows([row])
        else:
            self.commits.save(row)

    def save_many(self, states: Sequence[tuple[dict, str | None]]) -> dict[str, Exception]:
        """``save`` of several ``(state, text)`` pairs in one transaction; the errors by pid.

        Only the last state of a pid is written. When the group fails, its rows are written one
        by one, so a bad row fails only its own pid; an empty answer means all are committed.
        """
        rows = []
        for state, text in states:
            pid = _key(state.get("pid")) if isinstance(state, dict) else None
            if pid is None:
                raise invalid("state.pid", "required", "a process state needs its pid")
            rows.append((pid, dumps(state) if text is None else text, self._clock(), _ended(state)))
        latest = list({row[0]: row for row in rows}.values())
        if not latest:
            return {}
        try:
            self._write_rows(latest)
            return {}
        except Exception as exc:  # noqa: BLE001 - handed to the pid(s) it belongs to
            if len(latest) == 1:
                return {latest[0][0]: exc}
        errors: dict[str, Exception] = {}
        for row in latest:
            try:
                self._write_rows([row])
            except Exception as exc:  # noqa: BLE001 - answered to that pid's callers
                errors[row[0]] = exc
        return errors
