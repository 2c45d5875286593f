"""Workflow Machine process states, persisted at every step (one JSON document per pid).

``save`` runs at every changing command, before its reply, so it is one raw upsert statement
(peewee spent ~0.3 ms building and converting it), and it takes the state's JSON text from a
caller that already has it (the process workers encode only the new history steps).
"""

from __future__ import annotations

import uuid

from peewee import IntegrityError

from brokerflow.errors import Conflict
from storage.models import dumps
from storage.repositories.base import Repository, invalid, is_int

UPSERT = ('INSERT INTO "{table}" ("pid", "state", "updated_at", "ended") VALUES ({p}, {p}, {p}, {p}) '
          'ON CONFLICT ("pid") DO UPDATE SET "state" = EXCLUDED."state", '
          '"updated_at" = EXCLUDED."updated_at", "ended" = EXCLUDED."ended"')


def _key(pid: object) -> str | None:
    """The stored key of a pid: pids are strings (an int pid is stored as its digits)."""
    if isinstance(pid, str) and pid:
        return pid
    return str(pid) if is_int(pid) else None


def _ended(state: dict) -> bool:
    """``machine_state``'s ``status: "ended"`` (or a plain ``ended: true``)."""
    return state.get("status") == "ended" or bool(state.get("ended"))


class ProcessRepository(Repository):
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
        sql = UPSERT.format(table=self._m.Process._meta.table_name, p=self._db.param)
        row = (pid, dumps(state) if text is None else text, self._clock(), _ended(state))
        with self._write():
            self._db.execute_sql(sql, row)
