"""Workflow Machine process states, persisted at every step (one JSON document per pid)."""

from __future__ import annotations

import uuid

from peewee import IntegrityError

from brokerflow.errors import Conflict
from storage.repositories.base import Repository, invalid


def _pid_of(state: object) -> str:
    pid = state.get("pid") if isinstance(state, dict) else None
    if not isinstance(pid, str) or not pid:
        raise invalid("state.pid", "required", "a process state needs its pid")
    return pid


class ProcessRepository(Repository):
    def create(self, state: dict) -> str:
        """Store a new process; a pid (uuid4 hex) is assigned when ``state`` has none."""
        if not isinstance(state, dict):
            raise invalid("state", "not a map", "a process state must be a map")
        state = {**state, "pid": state.get("pid") or uuid.uuid4().hex}
        model = self._m.Process
        try:
            with self._write():
                model.insert(
                    pid=state["pid"], state=state, updated_at=self._clock(), ended=bool(state.get("ended"))
                ).execute()
        except IntegrityError:
            raise Conflict(
                f"process {state['pid']} exists", details=[{"path": "state.pid", "message": "taken"}]
            ) from None
        return state["pid"]

    def load(self, pid: str) -> dict | None:
        model = self._m.Process
        with self._read():
            row = model.get_or_none(model.pid == pid) if isinstance(pid, str) else None
        return None if row is None else row.state

    def save(self, state: dict) -> None:
        """Insert or replace the state of ``state["pid"]``; ``state["ended"]`` marks it ended."""
        pid = _pid_of(state)
        model = self._m.Process
        with self._write():
            row = {"pid": pid, "state": state, "updated_at": self._clock(), "ended": bool(state.get("ended"))}
            model.insert(**row).on_conflict(
                conflict_target=[model.pid], preserve=[model.state, model.updated_at, model.ended]
            ).execute()
