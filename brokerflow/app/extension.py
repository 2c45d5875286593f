"""The one way to add a feature to the engine: a subclass of ``Extension`` with named hooks.

Modelled on dramatiq's ``Middleware``: every hook is a no-op here, an extension overrides the
ones it needs, and the engine calls them in order at fixed points of its life. An extension
sees the engine only through ``EngineParts`` (what it may use to build its own actors) and
``Services`` (where it plugs its handlers and listeners into the API); it never reaches into
the engine's attributes. A hook that raises while starting fails the start; while stopping,
it is logged and the stop goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.rules import RunIds
from brokerflow.settings import Settings
from brokerflow.workflow.events import Event
from brokerflow.workflow.reference import ReferenceData

if TYPE_CHECKING:
    from brokerflow.api.services import Services
    from brokerflow.app.partitioning import Partitioning
    from brokerflow.storage.store import Store

__all__ = ["EngineParts", "Extension"]


@dataclass(frozen=True)
class EngineParts:
    """What an extension may use of the running engine to build and feed its own actors."""

    settings: Settings
    store: Store
    stats: StatsRegistry
    pipeline: Pipeline  # the action actors by kind; an extension may register its own
    refs: ReferenceData  # the reference replica (read only: the router is its one writer)
    run_ids: RunIds
    now_ms: Callable[[], int]
    echo: Callable[[list[Event]], None]  # events of our own changes, back through the router
    server_secret: str  # signs sink URLs (``--secret``, else generated once and stored)
    partitioning: Partitioning | None = None  # the owned partitions, as serve --cluster changes them


class Extension:
    """Base class of engine extensions; each hook below does nothing unless overridden."""

    def after_actors_started(self, parts: EngineParts) -> None:
        """The action actors and the router run: start this extension's actors."""

    def after_services_built(self, services: Services) -> None:
        """The API's services exist: plug in handlers (before, exec, sink) and change listeners."""

    def after_started(self, api_endpoint: str) -> None:
        """Everything runs, the ingress included, and the management API answers at ``api_endpoint``."""

    def before_stop_input(self) -> None:
        """The engine stops taking input: stop this extension's own sources (tickers, listeners)."""

    def after_drain(self) -> None:
        """The pipeline is drained and the run log flushed: stop this extension's actors."""

    def stats(self) -> dict[str, Any]:
        """Figures to merge into ``MngGetStats`` (top-level keys); none by default."""
        return {}
