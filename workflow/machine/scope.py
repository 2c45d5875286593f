"""A Workflow Machine process's brand, and what a brand-scoped caller may do to it: pure rules
over a process state (plain data), so the process workers only ask them under the pid's lock.

A process belongs to one brand, fixed when it is created (``input.brand``, else the brand of the
scoped token that created it, else none) and kept in ``state["brand"]``; its state actions run
with that brand whatever later inputs say. A scoped caller's ``ProcessGuard``
(``api.access.ProcessScope``) is asked before a command is applied and again on the state it
leaves, so a refused command changes nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

from brokerflow.workflow.context import mapping_context

CHANGING = frozenset({"START", "RESTORE", "EVENT", "ROLLBACK", "EXIT", "ABORT"})
CREATING = frozenset({"START", "RESTORE"})


class ProcessGuard(Protocol):
    """A scoped caller's limits (``api.access.ProcessScope``): its brand, and the check."""

    brand: str

    def allow(self, brand: Any, customer_id: Any = None) -> None: ...


def _named_brand(data: Any) -> str | None:
    """The brand an input map names (a non-empty string), else None."""
    brand = data.get("brand") if isinstance(data, dict) else None
    return brand if isinstance(brand, str) and brand else None


def process_brand(state: dict[str, Any]) -> str | None:
    """The brand a process belongs to: fixed at creation; a state saved before brands were
    fixed (no ``brand`` key) falls back to its input's, which is what its actions used."""
    if "brand" in state:
        return state["brand"]
    return _named_brand(state.get("input"))


def summary(state: dict[str, Any]) -> dict[str, Any]:
    """One line of a process list: pid, brand, top flow and state, status."""
    frame = state["stack"][-1] if state.get("stack") else {}
    return {"pid": state.get("pid"), "brand": process_brand(state), "flow": frame.get("flow"),
            "state": frame.get("state"), "status": state.get("status")}


def action_context(state: dict[str, Any]) -> dict[str, Any]:
    """What a state action's templates and executors see: ``input.*``, ``process.*``, brand, customer.

    The brand is the process's own, not ``input.brand``: a later input cannot move the
    actions into another brand.
    """
    data = state.get("input") or {}
    frame = state["stack"][-1] if state.get("stack") else {}
    return {**mapping_context("input", data), "process.pid": state.get("pid"),
            "process.flow": frame.get("flow"), "process.state": frame.get("state"),
            "brand": process_brand(state), "_customer_id": data.get("customer_id"),
            "_event_id": state.get("pid")}


def guard_before(guard: ProcessGuard, cmd: str, state: dict[str, Any] | None, data: Any) -> None:
    """A scoped caller's command, before it is applied: the process's brand (or, for a new one,
    the brand it would get), the customer it links now — a read (``HISTORY``) shows that
    customer's inputs — and the brand and customer its input names must be in scope."""
    if cmd in CREATING:
        brand = _named_brand(data) or guard.brand
    elif state is None:
        return  # the machine answers NOT_FOUND; nothing of another brand is shown
    else:
        brand = process_brand(state)
        guard.allow(brand, linked_customer(state))
    guard.allow(brand, data.get("customer_id") if isinstance(data, dict) else None)
    if isinstance(data, dict) and "brand" in data:
        guard.allow(data["brand"])


def guard_after(guard: ProcessGuard, state: dict[str, Any]) -> None:
    """A scoped caller's command, once applied: what the actions will act on (the process's
    brand and the customer it links now) must be in scope, or the new state is not kept."""
    guard.allow(process_brand(state), linked_customer(state))


def linked_customer(state: dict[str, Any]) -> Any:
    """The customer a process acts on: its input's ``customer_id`` (the input is always a map)."""
    return (state.get("input") or {}).get("customer_id")


def settle_brand(state: dict[str, Any], cmd: str, data: Any, guard: ProcessGuard | None) -> None:
    """Fix the brand of a new process; a process still without one takes the first an input names."""
    if cmd in CREATING:
        state["brand"] = _named_brand(data) or (guard.brand if guard is not None else None)
    elif state.get("brand") is None:
        named = _named_brand(state.get("input"))
        if named is not None:
            state["brand"] = named
