"""Management changes between engines: the one shape both ``--shards`` and ``--cluster`` send.

A rule, flow or reference change reaches the engine whose API took it; that engine stores it
and its ``Services`` tell its own listeners (reload the rules, apply the record to the router's
replica, drop the flow from the cache). ``ChangeFanout`` adds one more listener that hands the
change to ``send`` (a control PUB between shards, a table in PostgreSQL between cluster
members), and ``apply`` calls, for a change another engine sent, the same listeners its own
``Services`` would. The change is already stored: the others only reload what they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brokerflow.api.services import Services

__all__ = ["ChangeFanout"]

Change = dict[str, Any]  # {"change": "rules"} | {"change": "reference", "kind", "record"} | {"change": "flows", "name"}


class ChangeFanout:
    """Sends this engine's changes through ``send``; applies other engines' to the same listeners."""

    def __init__(self, services: Services, send: Callable[[Change], None]) -> None:
        self.services, self._send = services, send
        services.rules_listeners.append(self._rules)
        services.reference_listeners.append(self._reference)
        services.flow_listeners.append(self._flows)

    def _rules(self) -> None:
        self._send({"change": "rules"})

    def _reference(self, kind: str, record: dict[str, Any]) -> None:
        self._send({"change": "reference", "kind": kind, "record": record})

    def _flows(self, name: str) -> None:
        self._send({"change": "flows", "name": name})

    def listeners(self, message: Change) -> tuple[list[Callable[..., Any]], tuple[Any, ...]]:
        """The local listeners of another engine's change and their arguments; ValueError when
        the message is not a change (the caller logs it and goes on)."""
        services, change = self.services, message.get("change")
        if change == "rules":
            listeners, args = services.rules_listeners, ()
        elif change == "reference":
            listeners, args = services.reference_listeners, (message["kind"], message["record"])
        elif change == "flows":
            listeners, args = services.flow_listeners, (message["name"],)
        else:
            raise ValueError(f"unknown change {change!r}")
        own = (self._rules, self._reference, self._flows)
        return [listener for listener in listeners if listener not in own], args
