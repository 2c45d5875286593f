"""Workflow Machine process states, persisted at every step (one JSON document per pid)."""

from __future__ import annotations

import uuid

from peewee import IntegrityError

from brokerflow.errors import Conflict
from storage.repositories.base import Repository, invalid, is_int


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

    def save(self, state: dict) -> None:
        """Insert or replace the state of ``state["pid"]``."""
        pid = _key(state.get("pid")) if isinstance(state, dict) else None
        if pid is None:
            raise invalid("state.pid", "required", "a process state needs its pid")
        model = self._m.Process
        row = {"pid": pid, "state": state, "updated_at": self._clock(), "ended": _ended(state)}
        with self._write():
            model.insert(**row).on_conflict(
                conflict_target=[model.pid], preserve=[model.state, model.updated_at, model.ended]
            ).execute()
