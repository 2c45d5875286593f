"""What the command handlers may use of the running engine, and nothing more.

The engine builds one ``Services``, appends its listeners (so a changed rule set reaches the
rule actors, a changed reference record reaches the router) and plugs in the handlers that
need actors (stats, processes, before-hooks, manual exec, sinks). A handler left unset makes
its commands answer ``INTERNAL`` with a clear text, so the API also runs in a process that
hosts only part of the engine (tests, tools).

Listeners are hooks in the dramatiq sense: a failing listener is logged and never stops the
command that triggered it nor the other listeners — the change is already stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from brokerflow import clock
from brokerflow.api.access import ProcessScope
from brokerflow.errors import AccessDenied, Internal
from brokerflow.settings import Settings
from brokerflow.workflow.reference import stored

if TYPE_CHECKING:
    from brokerflow.api.access import Principal
    from brokerflow.api.store import ApiStore, HistoryPages
    from brokerflow.workflow.reference import ReferenceData

log = logging.getLogger(__name__)
T = TypeVar("T")

StatsProvider = Callable[[], dict[str, Any]]
ProcessHandler = Callable[[str, dict[str, Any], "Principal"], "Future[dict[str, Any]]"]
BeforeHandler = Callable[[str, str, dict[str, Any], "Principal"], dict[str, Any]]
ExecHandler = Callable[[dict[str, Any], Any, "Principal"], "Future[dict[str, Any]]"]
SinkHandler = Callable[[str, dict[str, Any]], "Future[dict[str, Any]]"]
DeadLetterHandler = Callable[[dict[str, Any]], "Future[tuple[dict[str, Any], str]]"]


class Burst:
    """The requests a front door's loop read in one go, and the work they left to finish together.

    The management API's loop applies process commands on its own thread (no hand-off to a
    worker and back) and commits their states in one transaction when it has served the whole
    burst, then answers them. A handler keeps its unfinished work in ``pending(finish, start)``;
    ``close`` calls ``finish(work)`` for each. One burst belongs to one thread.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[Callable[[Any], None], Any] = {}

    def pending(self, finish: Callable[[T], None], start: Callable[[], T]) -> T:
        """``finish``'s work in this burst: ``start()`` on first use, handed to ``finish`` by ``close``."""
        work = self._pending.get(finish)
        if work is None:
            work = self._pending[finish] = start()
        return work

    def close(self) -> None:
        while self._pending:
            finish, work = self._pending.popitem()
            try:
                finish(work)
            except Exception:  # the finisher answers its own callers; the others still finish
                log.exception("finishing a burst of API requests failed in %r", finish)


class Services:
    def __init__(self, store: ApiStore, refs: ReferenceData, settings: Settings | None = None,
                 now_ms: Callable[[], int] | None = None) -> None:
        self.store = store
        self.refs = refs
        self.settings = settings or Settings()
        self.now_ms: Callable[[], int] = now_ms or clock.now_ms
        self.started_ms = self.now_ms()
        self.rules_listeners: list[Callable[[], None]] = []
        self.reference_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.flow_listeners: list[Callable[[str], None]] = []
        self.stats_provider: StatsProvider | None = None
        # Writes the event history's buffered rows and waits for them (a backtest then sees every
        # event processed so far); None when the engine keeps no history.
        self.history_flush: Callable[[], None] | None = None
        self.open_history: Callable[[], HistoryPages] | None = None  # backtests read on a connection of their own
        self.latency_provider: Callable[[], dict[str, Any]] | None = None  # the run log's RunLatency.snapshot
        self.dead_actors_provider: Callable[[], list[str]] | None = None  # names of stopped actors (/ready)
        self.process_handler: ProcessHandler | None = None
        self.before_handler: BeforeHandler | None = None
        self.exec_handler: ExecHandler | None = None
        self.sink_handler: SinkHandler | None = None
        self.dead_letter_handler: DeadLetterHandler | None = None
        # serve --cluster: a management request frame for a process another member owns goes
        # there; returns a Future of the owner's reply (its raw bytes, or an envelope), or None
        # to serve the request here.
        self.api_forward: Callable[[bytes], Future | None] | None = None
        # serve --shards (shard 0) and serve --cluster: the same for a Workflow Machine command that
        # came in over HTTP (the gateway, the console), as a management request frame built from
        # it (``api.forwarding``) and the pid it names; None: this engine owns every process.
        self.http_forward: Callable[[bytes, str], Future | None] | None = None

    # -- change notifications -------------------------------------------------------------

    def rules_changed(self) -> None:
        self._notify(self.rules_listeners, "rules_changed")

    def reference_changed(self, kind: str, record: dict[str, Any]) -> None:
        self._notify(self.reference_listeners, "reference_changed", kind, record)

    def flows_changed(self, name: str) -> None:
        self._notify(self.flow_listeners, "flows_changed", name)

    @staticmethod
    def _notify(listeners: list[Callable[..., None]], what: str, *args: Any) -> None:
        for listener in list(listeners):
            try:
                listener(*args)
            except Exception:
                log.exception("%s listener %r failed; the change is stored, the others go on", what, listener)

    # -- engine-provided handlers ---------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``MngGetStats``'s body: the engine's when it provides one, else what storage knows."""
        if self.stats_provider is not None:
            return self.stats_provider()
        return {
            "actors": [],
            "bus": {"received": 0, "malformed": 0, "duplicates": 0, "gaps": 0},
            "runs": self.store.runs.counts(),
            "uptime_s": round(max(0, self.now_ms() - self.started_ms) / 1000, 3),
        }

    def latency(self) -> dict[str, Any] | None:
        """The event-to-run latency histogram (``actors.runlog.RunLatency``), None without an engine."""
        return self.latency_provider() if self.latency_provider is not None else None

    def dead_actors(self) -> list[str]:
        """The actors that stopped: none in a process without an engine's actors."""
        return self.dead_actors_provider() if self.dead_actors_provider is not None else []

    def process(self, cmd: str, params: dict[str, Any], principal: Principal,
                burst: Burst | None = None) -> Future[dict[str, Any]]:
        """``burst``: the caller's loop finishes the command with its burst, if the handler can.

        A brand-scoped principal's command carries its ``access.ProcessScope`` for the handler
        to check against the process; a handler that cannot take one refuses such callers
        rather than let them reach every brand's processes.
        """
        handler = self._required(self.process_handler, "the Workflow Machine")
        kwargs: dict[str, Any] = {}
        guard = ProcessScope.of(principal, self.customer_brand)
        if guard is not None:
            if not getattr(handler, "accepts_guard", False):
                raise AccessDenied("this engine's Workflow Machine cannot check brand scope: "
                                   "brand-scoped tokens may not drive processes here")
            kwargs["guard"] = guard
        if burst is not None and getattr(handler, "accepts_burst", False):
            kwargs["burst"] = burst
        return handler(cmd, params, principal, **kwargs)

    def customer_brand(self, customer_id: Any) -> str | None:
        """The brand of a customer as the action actors see it (the replica), else None."""
        customer = stored(self.refs.customers, customer_id)
        return customer.get("brand") if customer else None

    def before(self, resource: str, operation: str, record: dict[str, Any],
               principal: Principal) -> dict[str, Any] | Future[dict[str, Any]]:
        """A before-hook's answer: ``{"record", "changed"}``, or the error ``REJECTED`` or ``ACTION_FAILED``."""
        return self._required(self.before_handler, "before-hooks")(resource, operation, record, principal)

    def exec_rule(self, rule: dict[str, Any], input: Any, principal: Principal) -> Future[dict[str, Any]]:
        """Run a manual rule with ``input`` (RBAC already checked by the command); the RUN comes later."""
        return self._required(self.exec_handler, "manual rule execution")(rule, input, principal)

    def sink(self, route: str, request: dict[str, Any]) -> Future[dict[str, Any]]:
        """A sink route's answer: ``{"status", "headers", "body" (str or bytes)}``.

        ``request`` is ``{"method", "route", "headers" (lower-case names), "query" (first value per
        key), "body" (bytes), "content_type"}``, the same from every front door; a bad signature
        raises ``Unauthenticated``.
        """
        return self._required(self.sink_handler, "sink routes")(route, request)

    def redeliver_dead_letter(self, dead: dict[str, Any]) -> Future[tuple[dict[str, Any], str]]:
        """Send a stored dead letter again now; the Future gets ``(dead letter as it is after, status)``."""
        return self._required(self.dead_letter_handler, "webhook redelivery")(dead)

    @staticmethod
    def _required(handler: Callable[..., Any] | None, what: str) -> Callable[..., Any]:
        if handler is None:
            raise Internal(f"not available in this process: {what}")
        return handler
